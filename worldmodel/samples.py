"""Held-out evaluations run during training, through the evaluation's own measures: numbers for the
logs and pictures for people (reconstruction grids, real-beside-generated rollout GIFs)."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

import recorder
from worldmodel.evaluate.episodes import EpisodeStart, HeldOutEpisode
from worldmodel.evaluate.fidelity import recorded_rollouts, teacher_forced
from worldmodel.evaluate.names import PSNR_COPY_LAST, PSNR_TEACHER_FORCED
from worldmodel.evaluate.report import save_side_by_side
from worldmodel.evaluate.reward_end import reward_end_scores
from worldmodel.metrics import psnr
from worldmodel.pictures import upscale
from worldmodel.vae import decode_latents, encode_frames, frames_to_tensor, tensor_to_frames

SAMPLE_SEED = 0


def held_out_frames(data_path: Path, episodes, count: int, seed: int = 0) -> np.ndarray:
    """A fixed sample of ``count`` frames from held-out episodes."""
    rng = np.random.default_rng(seed)
    with recorder.load(data_path) as trajectories:
        frames = np.concatenate([trajectories.episode(int(e)).frames for e in episodes])
    return frames[np.sort(rng.choice(len(frames), size=min(count, len(frames)), replace=False))]


def save_grid(path: Path, *rows: torch.Tensor) -> None:
    """A PNG of the first 8 frames of each of ``rows`` (uint8 (N, H, W, 3)), one row each, upscaled."""
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = np.concatenate([np.concatenate(list(frames[:8].numpy()), 1) for frames in rows], 0)
    iio.imwrite(path, upscale(grid))


def vae_samples(data_path: Path, held_out_ids, run_dir: Path, count: int = 64):
    """The autoencoder's held-out reconstruction PSNR, and a grid of frames over their reconstructions."""
    frames = torch.from_numpy(held_out_frames(data_path, held_out_ids, count))

    @torch.no_grad()
    def evaluate(vae, step: int) -> dict:
        device = next(vae.parameters()).device
        reconstruction = tensor_to_frames(vae(frames_to_tensor(frames).to(device)).sample.float()).cpu()
        save_grid(run_dir / "samples" / f"vae_step{step:06d}.png", frames, reconstruction)
        return {"held_out_psnr": psnr(reconstruction, frames).mean().item()}

    return evaluate


def decoder_samples(teacher_vae, data_path: Path, held_out_ids, run_dir: Path, count: int = 64):
    """A student decoder's held-out frames against the real ones and against its teacher's, from the
    teacher's latents; a grid of real, teacher and student frames."""
    frames = torch.from_numpy(held_out_frames(data_path, held_out_ids, count))
    latents = encode_frames(teacher_vae, frames)
    taught = decode_latents(teacher_vae, latents).cpu()

    @torch.no_grad()
    def evaluate(decoder, step: int) -> dict:
        drawn = tensor_to_frames(decoder(latents / teacher_vae.config.scaling_factor).float()).cpu()
        save_grid(run_dir / "samples" / f"decoder_step{step:06d}.png", frames, taught, drawn)
        return {
            "held_out_psnr": psnr(drawn, frames).mean().item(),
            "psnr_to_teacher": psnr(drawn, taught).mean().item(),
        }

    return evaluate


def cached_episodes(cache, data_path: Path, indices) -> dict[int, HeldOutEpisode]:
    """Held-out episodes as the evaluation reads them, their latents taken from the training cache."""
    episodes = {}
    with recorder.load(data_path) as trajectories:
        for index in sorted({int(i) for i in indices}):
            episode = trajectories.episode(index)
            frames = slice(cache.frame_start[index], cache.frame_start[index] + cache.length[index] + 1)
            episodes[index] = HeldOutEpisode.of(index, episode, cache.latents[frames])
    return episodes


def dit_samples(
    model, cache, data_path: Path, held_out_ids, run_dir: Path, count: int = 128, rollout_steps: int = 32
):
    """The evaluation's teacher-forced PSNR (against copy-last) on ``count`` held-out windows, and a
    rollout GIF of the first held-out episode under its recorded actions."""
    history_length = model.settings.history_length
    rows = cache.window_starts(held_out_ids, history_length)
    rows = rows[np.random.default_rng(0).choice(len(rows), size=min(count, len(rows)), replace=False)]
    episodes = cached_episodes(cache, data_path, [*rows[:, 0], held_out_ids[0]])
    windows = [EpisodeStart(episodes[int(e)], int(f), history_length) for e, f in rows]
    gif_start = EpisodeStart(episodes[int(held_out_ids[0])], 0, history_length)

    @torch.no_grad()
    def evaluate(denoiser, step: int) -> dict:
        trained, model.denoiser = model.denoiser, denoiser
        try:
            scores = teacher_forced(model, windows, SAMPLE_SEED)
            rollouts = recorded_rollouts(model, [gif_start], rollout_steps, SAMPLE_SEED)
            if rollouts.valid.any():
                save_side_by_side(run_dir / "samples" / f"dit_step{step:06d}.gif", rollouts, 0)
        finally:
            model.denoiser = trained
        return {
            PSNR_TEACHER_FORCED: float(scores["psnr"].mean()),
            PSNR_COPY_LAST: float(scores[PSNR_COPY_LAST].mean()),
        }

    return evaluate


def heads_metrics(cache, held_out_ids):
    """The evaluation's reward and end scores of the heads on every held-out transition."""
    rows = cache.transitions(held_out_ids)
    previous, following, actions, rewards, terminated = cache.transition_batch(rows)

    def evaluate(heads, step: int) -> dict:
        device = next(heads.parameters()).device
        scores = reward_end_scores(
            heads,
            previous.to(device),
            following.to(device),
            actions.to(device),
            rewards.numpy(),
            terminated.numpy(),
            end_threshold=0.5,  # the threshold is chosen after training; 0.5 until then
        )
        return {
            name: scores[name]
            for name in ("reward_precision", "reward_recall", "end_precision", "end_recall")
        }

    return evaluate
