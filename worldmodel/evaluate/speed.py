"""Speed of the playable game: frames per second of one environment step (sample, decode, heads),
single and batched, and the sampler ablations that trade it against fidelity and control."""

from __future__ import annotations

import time

import numpy as np
import torch

from worldmodel.env import Context as GameContext
from worldmodel.env import LatentGames, WorldModelEnv
from worldmodel.evaluate.episodes import Context
from worldmodel.evaluate.fidelity import recorded_rollouts, teacher_forced
from worldmodel.evaluate.game_metrics import at_step, per_step_mean

WARMUP_STEPS = 3
ABLATIONS = {
    "sampling_steps": (1, 2, 4, 8),
    "guidance_scale": (1.0, 2.0, 3.0),
    "context_noise": (0.0, 0.05, 0.1, 0.2),
}
AGREEMENT_STEP = 16


def _median_fps(step, steps: int, frames_per_step: int) -> float:
    for _ in range(WARMUP_STEPS):
        step()
    durations = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        durations.append(time.perf_counter() - started)
    return frames_per_step / float(np.median(durations))


def step_fps(model, steps: int, seed: int, **sampling) -> float:
    """Frames per second of ``WorldModelEnv.step`` with these sampler settings (median over ``steps``)."""
    env = WorldModelEnv(model, context="real", device=model.device, **sampling)
    env.reset(seed=seed)
    actions = iter(np.random.default_rng(seed).integers(env.action_space.n, size=WARMUP_STEPS + steps))
    try:
        return _median_fps(lambda: env.step(int(next(actions))), steps, 1)
    finally:
        env.close()


def batched_fps(model, batch: int, steps: int, seed: int, context: Context) -> float:
    """Frames per second of ``batch`` games stepped together, as a vectorised env or an RL learner does."""
    games = LatentGames(model, batch)
    episode = context.episode
    start = GameContext(
        episode.frames[context.start : context.last + 1],
        context.actions(model.settings.action_window - 1).numpy(),
        episode.seed,
        episode.actions[: context.last],
    )
    games.start(list(range(batch)), [start] * batch, [seed + row for row in range(batch)])
    actions = torch.zeros(batch, dtype=torch.long)
    return _median_fps(lambda: games.step(actions, {}), steps, batch)


def ablations(
    model, windows, contexts, agreement_by_step, fps_steps: int, seed: int, progress=None
) -> list[dict]:
    """Each sampler setting varied alone around the checkpoint's defaults, scored on a subset."""
    defaults = model.settings.sampler
    rows = []
    for name, values in ABLATIONS.items():
        for value in values:
            sampling = {name: value}
            scores = teacher_forced(model, windows, seed, **sampling)
            row = {
                "setting": name,
                "value": value,
                "default": value == getattr(defaults, name),
                "psnr_teacher_forced": float(scores["psnr"].mean()),
                "pacman_tile_agreement_at_16": float("nan"),
                "step_fps": step_fps(model, fps_steps, seed, **sampling),
            }
            if agreement_by_step is not None:
                rollouts = recorded_rollouts(model, contexts, AGREEMENT_STEP, seed, **sampling)
                curve = per_step_mean(agreement_by_step(rollouts), rollouts.valid)
                row["pacman_tile_agreement_at_16"] = at_step(curve, AGREEMENT_STEP)
            rows.append(row)
            if progress is not None:
                progress.update()
    return rows
