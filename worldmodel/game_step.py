"""The one way the learned game advances: B games whose histories stay in latent space, each step
taking the action window to the next latent, its frame, reward and end. The single and the batched
env, the evaluation, the training-time samples and the benchmarks all step through ``LatentGames``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from recorder import RESET_ACTION
from worldmodel.contexts import Context
from worldmodel.model import WorldModel
from worldmodel.sampler import Sampler


@dataclass
class Step:
    """What one step of N games gave: latents on the model's device, the rest on the CPU."""

    latents: torch.Tensor  # (N, C, h, w)
    frames: np.ndarray | None  # (N, H, W, 3) uint8; None when not decoded
    reward: np.ndarray | None  # (N,); None when the heads were not asked
    end_probability: np.ndarray | None  # (N,)


def sampling_generators(seeds: Sequence[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per game: a game's samples do not depend on the games batched with it."""
    return [torch.Generator(device).manual_seed(int(seed)) for seed in seeds]


class LatentGames:
    """B games advanced by the world model in one forward pass."""

    def __init__(self, model: WorldModel, batch: int):
        s, device = model.settings, model.device
        self.model = model
        latent_shape = (s.latent_channels, s.latent_size, s.latent_size)
        self.history_latents = torch.zeros(
            batch, s.history_length, *latent_shape, device=device
        )  # (B, K, C, h, w)
        self.history_actions = torch.zeros(
            batch, s.action_window - 1, dtype=torch.long, device=device
        )  # (B, W-1) the action window less the action about to be taken
        self.generators = sampling_generators([0] * batch, device)

    @torch.inference_mode()
    def start(self, indices: Sequence[int], contexts: Sequence[Context], seeds: Sequence[int]) -> None:
        """Starts games ``indices`` from ``contexts``, game i sampling from a generator seeded ``seeds[i]``."""
        k = self.history_latents.shape[1]
        missing = [c for c in contexts if c.latents is None]
        if missing:  # one encoder pass for every context given as frames
            encoded = iter(
                self.model.encode(torch.from_numpy(np.concatenate([c.frames for c in missing]))).split(k)
            )
        for index, context, seed in zip(indices, contexts, seeds, strict=True):
            latents = next(encoded) if context.latents is None else context.latents
            self.history_latents[index] = latents.to(self.history_latents.device)
            self.history_actions[index] = torch.as_tensor(context.actions)
            self.generators[index].manual_seed(int(seed))

    @torch.inference_mode()
    def step(
        self,
        actions: torch.Tensor,
        sampler: Sampler | None = None,
        indices: np.ndarray | None = None,
        decode: bool = True,
        rewards: bool = True,
        window_limit: int | None = None,
    ) -> Step:
        """Advances the games ``indices`` (all when None) by ``actions`` (N,).

        ``window_limit`` shows the model only the latest actions of its window, the older ones
        replaced by RESET_ACTION (no key): an ablation of how far back the model reads.
        """
        model = self.model
        select = slice(None) if indices is None else torch.from_numpy(np.asarray(indices)).to(model.device)
        history_latents = self.history_latents[select]  # (N, K, C, h, w)
        actions = actions.to(model.device)
        window = torch.cat([self.history_actions[select], actions[:, None]], dim=1)  # (N, W)
        shown = window
        if window_limit is not None and window_limit < window.shape[1]:
            shown = window.clone()
            shown[:, : window.shape[1] - window_limit] = RESET_ACTION
        generators = self.generators if indices is None else [self.generators[i] for i in indices]
        next_latents = model.predict_next(history_latents, shown, sampler, generators)  # (N, C, h, w)
        step = Step(next_latents, None, None, None)
        if decode:
            step.frames = model.decode(next_latents).cpu().numpy()
        if rewards:
            reward, end = model.predict_reward_end(history_latents[:, -1], next_latents, actions)
            step.reward, step.end_probability = reward.float().cpu().numpy(), end.float().cpu().numpy()
        self.history_latents[select] = torch.cat([history_latents[:, 1:], next_latents[:, None]], dim=1)
        self.history_actions[select] = window[:, 1:]
        return step


@torch.no_grad()
def rollout(
    model: WorldModel,
    contexts: Sequence[Context],
    actions: torch.Tensor,  # (B, T) the actions to play from each context
    seeds: Sequence[int],
    sampler: Sampler | None = None,
    window_limit: int | None = None,
) -> torch.Tensor:
    """Free-running generation: the T latents (B, T, C, h, w) the model generates feeding on its own
    predictions, game b sampling from a generator seeded ``seeds[b]``."""
    games = LatentGames(model, len(contexts))
    games.start(range(len(contexts)), contexts, seeds)
    generated = [
        games.step(actions[:, t], sampler, decode=False, rewards=False, window_limit=window_limit).latents
        for t in range(actions.shape[1])
    ]
    return torch.stack(generated, dim=1)
