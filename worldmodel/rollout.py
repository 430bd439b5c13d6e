"""Free-running generation: the model feeds on its own predictions for a sequence of actions.
Shared by training samples, evaluation and the Gymnasium environment."""

from __future__ import annotations

import torch

from recorder import RESET_ACTION


@torch.no_grad()
def rollout(
    model,
    context_latents: torch.Tensor,  # (B, K, C, h, w) real history to start from
    context_actions: torch.Tensor,  # (B, W-1) the actions before the first step (the action window less one)
    actions: torch.Tensor,  # (B, T) actions to play from there
    generator: torch.Generator | None = None,
    window_limit: int | None = None,
    **sampling,
) -> torch.Tensor:
    """Returns the T generated latents (B, T, C, h, w).

    ``window_limit`` shows the model only the latest actions of its window, the older ones replaced
    by RESET_ACTION (no key): an ablation of how far back the model reads.
    """
    history, past_actions = context_latents, context_actions
    generated = []
    for step in range(actions.shape[1]):
        window_actions = torch.cat([past_actions, actions[:, step : step + 1]], dim=1)  # (B, W)
        shown = window_actions
        if window_limit is not None and window_limit < shown.shape[1]:
            shown = window_actions.clone()
            shown[:, : shown.shape[1] - window_limit] = RESET_ACTION
        next_latent = model.predict_next(history, shown, generator=generator, **sampling)  # (B, C, h, w)
        generated.append(next_latent)
        history = torch.cat([history[:, 1:], next_latent[:, None]], dim=1)
        past_actions = window_actions[:, 1:]
    return torch.stack(generated, dim=1)
