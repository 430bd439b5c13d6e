"""Held-out evaluations run during training: numbers for the logs and pictures for people
(reconstruction grids, real-vs-generated rollout GIFs)."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

import recorder
from worldmodel.metrics import precision_recall, psnr
from worldmodel.rollout import rollout
from worldmodel.vae import frames_to_tensor, tensor_to_frames

SAMPLE_SCALE = 4  # frames are 64x64; pictures are upscaled so a person can see them


def upscale(frames: np.ndarray, scale: int = SAMPLE_SCALE) -> np.ndarray:
    return frames.repeat(scale, axis=-3).repeat(scale, axis=-2)


def save_gif(path: Path, frames: np.ndarray, fps: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, list(frames), duration=1000 / fps, loop=0)


def held_out_frames(data_path: Path, episodes, count: int, seed: int = 0) -> np.ndarray:
    """A fixed sample of ``count`` frames from held-out episodes."""
    rng = np.random.default_rng(seed)
    with recorder.load(data_path) as trajectories:
        frames = np.concatenate([trajectories.episode(int(e)).frames for e in episodes])
    return frames[np.sort(rng.choice(len(frames), size=min(count, len(frames)), replace=False))]


def vae_samples(data_path: Path, held_out_ids, run_dir: Path, count: int = 64):
    frames = torch.from_numpy(held_out_frames(data_path, held_out_ids, count))

    @torch.no_grad()
    def evaluate(vae, step: int) -> dict:
        device = next(vae.parameters()).device
        reconstruction = tensor_to_frames(vae(frames_to_tensor(frames).to(device)).sample.float()).cpu()
        grid = np.concatenate(
            [
                np.concatenate(list(frames[:8].numpy()), 1),
                np.concatenate(list(reconstruction[:8].numpy()), 1),
            ],
            0,
        )
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
        iio.imwrite(run_dir / "samples" / f"vae_step{step:06d}.png", upscale(grid))
        return {"held_out_psnr": psnr(reconstruction, frames).mean().item()}

    return evaluate


def dit_samples(
    model, cache, data_path: Path, held_out_ids, run_dir: Path, count: int = 128, rollout_steps: int = 32
):
    """Teacher-forced next-frame PSNR against copy-last-frame, and a rollout GIF, on held-out episodes."""
    history_length = model.settings.history_length
    rows = cache.window_starts(held_out_ids, history_length)
    rows = rows[np.random.default_rng(0).choice(len(rows), size=min(count, len(rows)), replace=False)]
    with recorder.load(data_path) as trajectories:
        episodes = {int(e): trajectories.episode(int(e)).frames for e in np.unique(rows[:, 0])}
        first = int(held_out_ids[0])
        gif_frames = trajectories.episode(first).frames
    next_frames = torch.from_numpy(np.stack([episodes[e][f + history_length] for e, f in rows]))
    last_frames = torch.from_numpy(np.stack([episodes[e][f + history_length - 1] for e, f in rows]))
    history, _, actions = cache.history_batch(rows, history_length, model.settings.action_window)

    @torch.no_grad()
    def evaluate(denoiser, step: int) -> dict:
        trained, model.denoiser = model.denoiser, denoiser
        try:
            generator = torch.Generator(device=model.device).manual_seed(0)
            predicted = model.predict_next(
                history.to(model.device), actions.to(model.device), generator=generator
            )
            predicted_frames = model.decode(predicted).cpu()
            metrics = {
                "psnr_teacher_forced": psnr(predicted_frames, next_frames).mean().item(),
                "psnr_copy_last": psnr(last_frames, next_frames).mean().item(),
            }
            save_rollout_gif(
                model,
                cache,
                first,
                gif_frames,
                rollout_steps,
                run_dir / "samples" / f"dit_step{step:06d}.gif",
            )
        finally:
            model.denoiser = trained
        return metrics

    return evaluate


def save_rollout_gif(model, cache, episode: int, real_frames: np.ndarray, steps: int, path: Path) -> None:
    """Real frames left, generated right, from the episode's first K frames under its real actions."""
    history_length = model.settings.history_length
    steps = min(steps, len(real_frames) - history_length)
    if steps <= 0:
        return
    row = np.array([[episode, 0]])
    context, _, window_actions = cache.history_batch(row, history_length, model.settings.action_window)
    start = int(cache.step_start[episode])
    actions = cache.actions[start + history_length - 1 : start + history_length - 1 + steps][None]
    generator = torch.Generator(device=model.device).manual_seed(0)
    latents = rollout(
        model,
        context.to(model.device),
        window_actions[:, :-1].to(model.device),
        actions.to(model.device),
        generator=generator,
    )
    generated = model.decode(latents[0]).cpu().numpy()
    real = real_frames[history_length : history_length + steps]
    save_gif(path, upscale(np.concatenate([real, generated], axis=2)))


def heads_metrics(cache, held_out_ids):
    rows = cache.transitions(held_out_ids)
    previous, following, actions, rewards, terminated = cache.transition_batch(rows)

    @torch.no_grad()
    def evaluate(heads, step: int) -> dict:
        device = next(heads.parameters()).device
        reward_output, end_logit = heads(previous.to(device), following.to(device), actions.to(device))
        reward = heads.reward(reward_output)
        metrics = {}
        for name, predicted, actual in (
            ("reward", reward.cpu() > 0.5, rewards > 0.5),
            ("end", end_logit.cpu() > 0, terminated),
        ):
            metrics[f"{name}_precision"], metrics[f"{name}_recall"] = precision_recall(predicted, actual)
        return metrics

    return evaluate
