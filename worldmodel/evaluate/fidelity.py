"""Image fidelity: teacher-forced next-frame PSNR/SSIM against copying the last frame, and free-running
rollouts under the recorded actions compared with the recorded frames step by step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from worldmodel.evaluate.episodes import Context, item_generators
from worldmodel.metrics import psnr, ssim
from worldmodel.rollout import rollout

BATCH = 64  # windows per predict_next call: large enough to amortise, small enough for any CPU


@torch.no_grad()
def teacher_forced(model, windows: list[Context], seed: int, **sampling) -> dict[str, np.ndarray]:
    """Per-window PSNR/SSIM of the predicted next frame and of the copy-last-frame baseline.

    Also the autoencoder's own PSNR on the target frame: the ceiling the decoder allows.
    """
    scores = {name: [] for name in ("psnr", "ssim", "psnr_copy_last", "ssim_copy_last", "psnr_autoencoder")}
    generators = item_generators(seed, len(windows), model.device)
    for first in range(0, len(windows), BATCH):
        batch = windows[first : first + BATCH]
        history = torch.stack([w.latents() for w in batch]).to(model.device)  # (B, K, C, h, w)
        past = model.settings.action_window - 1
        actions = torch.stack(
            [torch.cat([w.actions(past), torch.tensor([w.episode.actions[w.last]])]) for w in batch]
        ).to(model.device)  # (B, W)
        predicted_latents = model.predict_next(
            history, actions, generator=generators[first : first + len(batch)], **sampling
        )  # (B, C, h, w)
        predicted = model.decode(predicted_latents).cpu()
        target = torch.from_numpy(np.stack([w.episode.frames[w.last + 1] for w in batch]))
        last = torch.from_numpy(np.stack([w.episode.frames[w.last] for w in batch]))
        target_latents = torch.stack([w.episode.latents[w.last + 1] for w in batch]).to(model.device)
        reconstructed = model.decode(target_latents).cpu()
        scores["psnr"].append(psnr(predicted, target))
        scores["ssim"].append(ssim(predicted, target))
        scores["psnr_copy_last"].append(psnr(last, target))
        scores["ssim_copy_last"].append(ssim(last, target))
        scores["psnr_autoencoder"].append(psnr(reconstructed, target))
    return {name: torch.cat(values).numpy() for name, values in scores.items()}


@dataclass
class Rollouts:
    """Free-running generations next to the frames the real game showed for the same actions."""

    contexts: list[Context]
    actions: np.ndarray  # (B, T) int64, NOOP-padded past each rollout's end
    generated: np.ndarray  # (B, T, H, W, 3) uint8
    real: np.ndarray  # (B, T, H, W, 3) uint8, zeros past each rollout's end
    valid: np.ndarray  # (B, T) bool: the real game had this frame

    def head(self, count: int) -> Rollouts:
        """The first ``count`` rollouts (each rollout depends only on its own start and generator)."""
        return Rollouts(
            self.contexts[:count],
            self.actions[:count],
            self.generated[:count],
            self.real[:count],
            self.valid[:count],
        )


@torch.no_grad()
def free_run(
    model,
    contexts: list[Context],
    action_lists: list[np.ndarray],
    real_lists: list[np.ndarray],
    seed: int,
    window_limit: int | None = None,
    **sampling,
) -> Rollouts:
    """Generates from each context under its actions, batched; ``real_lists`` are the real frames to compare."""
    horizon = max(len(actions) for actions in action_lists)
    batch = len(contexts)
    actions = np.zeros((batch, horizon), dtype=np.int64)
    real = np.zeros((batch, horizon, *contexts[0].episode.frames.shape[1:]), dtype=np.uint8)
    valid = np.zeros((batch, horizon), dtype=bool)
    for row, (played, frames) in enumerate(zip(action_lists, real_lists, strict=True)):
        actions[row, : len(played)] = played
        real[row, : len(frames)] = frames
        valid[row, : len(frames)] = True
    device = model.device
    latents = rollout(
        model,
        torch.stack([c.latents() for c in contexts]).to(device),  # (B, K, C, h, w)
        torch.stack([c.actions(model.settings.action_window - 1) for c in contexts]).to(device),  # (B, W-1)
        torch.from_numpy(actions).to(device),
        generator=item_generators(seed, batch, device),
        window_limit=window_limit,
        **sampling,
    )  # (B, T, C, h, w)
    generated = model.decode(latents.flatten(0, 1)).cpu().numpy().reshape(real.shape)
    return Rollouts(contexts, actions, generated, real, valid)


def recorded_rollouts(model, contexts: list[Context], horizon: int, seed: int, **sampling) -> Rollouts:
    """Rollouts under each episode's own recorded actions, compared with its recorded frames."""
    futures = [context.recorded_future(horizon) for context in contexts]
    return free_run(model, contexts, [a for a, _ in futures], [f for _, f in futures], seed, **sampling)


def rollout_psnr(rollouts: Rollouts) -> tuple[np.ndarray, np.ndarray]:
    """(B, T) PSNR of each generated frame and of the last context frame held still, against the real one."""
    generated = psnr(torch.from_numpy(rollouts.generated), torch.from_numpy(rollouts.real)).numpy()
    last = np.stack([c.episode.frames[c.last] for c in rollouts.contexts])[:, None]  # (B, 1, H, W, 3)
    held = psnr(
        torch.from_numpy(np.broadcast_to(last, rollouts.real.shape).copy()), torch.from_numpy(rollouts.real)
    )
    return generated, held.numpy()
