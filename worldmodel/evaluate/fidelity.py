"""Image fidelity: teacher-forced next-frame PSNR/SSIM against copying the last frame, and free-running
rollouts under the recorded actions compared with the recorded frames step by step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from worldmodel.evaluate.episodes import EpisodeStart, sampling_seeds
from worldmodel.evaluate.names import PSNR_COPY_LAST
from worldmodel.game_step import LatentGames, rollout
from worldmodel.metrics import psnr, ssim
from worldmodel.sampler import Sampler

BATCH = 64  # windows per model step: large enough to amortise, small enough for any CPU


def next_frames(
    model, contexts: list, actions: np.ndarray, seeds: list[int], sampler: Sampler | None = None
) -> np.ndarray:
    """Teacher forcing: the frame (N, H, W, 3) predicted one step from each real context under its
    action, in batches of BATCH, through the same step as the game."""
    predicted = []
    for first in range(0, len(contexts), BATCH):
        chunk = slice(first, first + BATCH)
        games = LatentGames(model, len(contexts[chunk]))
        games.start(range(len(contexts[chunk])), contexts[chunk], seeds[chunk])
        step = games.step(torch.as_tensor(actions[chunk]), sampler, rewards=False)
        predicted.append(step.frames)
    return np.concatenate(predicted)


@torch.no_grad()
def teacher_forced(
    model, windows: list[EpisodeStart], seed: int, sampler: Sampler | None = None
) -> dict[str, np.ndarray]:
    """Per-window PSNR/SSIM of the predicted next frame and of the copy-last-frame baseline.

    Also the autoencoder's own PSNR on the target frame: the ceiling the decoder allows.
    """
    window = model.settings.action_window
    predicted = torch.from_numpy(
        next_frames(
            model,
            [w.context(window) for w in windows],
            np.array([w.episode.actions[w.last] for w in windows]),
            sampling_seeds(seed, len(windows)),
            sampler,
        )
    )
    target = torch.from_numpy(np.stack([w.episode.frames[w.last + 1] for w in windows]))
    last = torch.from_numpy(np.stack([w.episode.frames[w.last] for w in windows]))
    reconstructed = torch.cat(
        [
            model.decode(
                torch.stack([w.episode.latents[w.last + 1] for w in windows[i : i + BATCH]]).to(model.device)
            ).cpu()
            for i in range(0, len(windows), BATCH)
        ]
    )
    return {
        "psnr": psnr(predicted, target).numpy(),
        "ssim": ssim(predicted, target).numpy(),
        PSNR_COPY_LAST: psnr(last, target).numpy(),
        "ssim_copy_last": ssim(last, target).numpy(),
        "psnr_autoencoder": psnr(reconstructed, target).numpy(),
    }


@dataclass
class Rollouts:
    """Free-running generations next to the frames the real game showed for the same actions."""

    contexts: list[EpisodeStart]
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
    contexts: list[EpisodeStart],
    action_lists: list[np.ndarray],
    real_lists: list[np.ndarray],
    seed: int,
    window_limit: int | None = None,
    sampler: Sampler | None = None,
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
    latents = rollout(
        model,
        [c.context(model.settings.action_window) for c in contexts],
        torch.from_numpy(actions),
        sampling_seeds(seed, batch),
        sampler,
        window_limit,
    )  # (B, T, C, h, w)
    generated = model.decode(latents.flatten(0, 1)).cpu().numpy().reshape(real.shape)
    return Rollouts(contexts, actions, generated, real, valid)


def recorded_rollouts(
    model, contexts: list[EpisodeStart], horizon: int, seed: int, sampler: Sampler | None = None
) -> Rollouts:
    """Rollouts under each episode's own recorded actions, compared with its recorded frames."""
    futures = [context.recorded_future(horizon) for context in contexts]
    return free_run(model, contexts, [a for a, _ in futures], [f for _, f in futures], seed, sampler=sampler)


def rollout_psnr(rollouts: Rollouts) -> tuple[np.ndarray, np.ndarray]:
    """(B, T) PSNR of each generated frame and of the last context frame held still, against the real one."""
    generated = psnr(torch.from_numpy(rollouts.generated), torch.from_numpy(rollouts.real)).numpy()
    last = np.stack([c.episode.frames[c.last] for c in rollouts.contexts])[:, None]  # (B, 1, H, W, 3)
    held = psnr(
        torch.from_numpy(np.broadcast_to(last, rollouts.real.shape).copy()), torch.from_numpy(rollouts.real)
    )
    return generated, held.numpy()
