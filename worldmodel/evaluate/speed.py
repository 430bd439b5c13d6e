"""Speed of the playable game: frames per second of one environment step (sample, decode, heads),
single and batched, and the sampler ablations that trade it against fidelity and control. The
benchmarks (bench/) time the envs through these same functions."""

from __future__ import annotations

import time

import numpy as np
import torch

from worldmodel.env import WorldModelEnv
from worldmodel.evaluate.fidelity import recorded_rollouts, teacher_forced
from worldmodel.evaluate.game_metrics import at_step, per_step_mean
from worldmodel.evaluate.names import PSNR_TEACHER_FORCED, STEP_FPS, TILE_AT_16
from worldmodel.sampler import Sampler
from worldmodel.vector_env import WorldModelVectorEnv

WARMUP_STEPS = 3
ABLATIONS = {
    "sampling_steps": (1, 2, 4, 8),
    "guidance_scale": (1.0, 2.0, 3.0),
    "context_noise": (0.0, 0.05, 0.1, 0.2),
}
AGREEMENT_STEP = 16


NO_END = 2.0  # an end threshold no probability reaches: a timed step never includes an autoreset


def _median_fps(step, steps: int, frames_per_step: int, warmup: int, synchronize=None) -> float:
    for _ in range(warmup):
        step()
    durations = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        if synchronize is not None:
            synchronize()
        durations.append(time.perf_counter() - started)
    return frames_per_step / float(np.median(durations))


def _synchronize(model):
    """Waits for the GPU's queued work, so a timed step includes it."""
    return torch.cuda.synchronize if model.device.type == "cuda" else None


def step_fps(
    model,
    steps: int,
    seed: int,
    sampler: Sampler | None = None,
    warmup: int = WARMUP_STEPS,
    runtime: str = "torch",
) -> float:
    """Frames per second of ``WorldModelEnv.step`` with this sampler and runtime (median over ``steps``
    random keys), at the torch threads the caller set."""
    env = WorldModelEnv(model, context="real", device=model.device, sampler=sampler, end_threshold=NO_END,
                        threads=torch.get_num_threads(), runtime=runtime)  # fmt: skip
    env.reset(seed=seed)
    actions = iter(np.random.default_rng(seed).integers(env.action_space.n, size=warmup + steps))
    try:
        return _median_fps(lambda: env.step(int(next(actions))), steps, 1, warmup, _synchronize(model))
    finally:
        env.close()


def vector_env_fps(
    model,
    batch: int,
    steps: int,
    seed: int,
    sampler: Sampler | None = None,
    warmup: int = WARMUP_STEPS,
    runtime: str = "torch",
    observation: str = "frames",
) -> float:
    """Frames per second (copies x steps per second) of ``WorldModelVectorEnv.step`` at ``batch`` copies
    under random keys, as an RL learner steps it, observing frames or latents."""
    env = WorldModelVectorEnv(batch, model, device=model.device, sampler=sampler, end_threshold=NO_END,
                              threads=torch.get_num_threads(), runtime=runtime, observation=observation)  # fmt: skip
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    try:
        step = lambda: env.step(rng.integers(env.single_action_space.n, size=batch))  # noqa: E731
        return _median_fps(step, steps, batch, warmup, _synchronize(model))
    finally:
        env.close()


def ablations(
    model, windows, contexts, agreement_by_step, fps_steps: int, seed: int, progress=None
) -> list[dict]:
    """Each sampler setting varied alone around the checkpoint's defaults, scored on a subset."""
    defaults = model.settings.sampler
    rows = []
    for name, values in ABLATIONS.items():
        for value in values:
            sampler = model.sampler.replace(**{name: value})
            scores = teacher_forced(model, windows, seed, sampler)
            row = {
                "setting": name,
                "value": value,
                "default": value == getattr(defaults, name),
                PSNR_TEACHER_FORCED: float(scores["psnr"].mean()),
                TILE_AT_16: float("nan"),
                STEP_FPS: step_fps(model, fps_steps, seed, sampler),
            }
            if agreement_by_step is not None:
                rollouts = recorded_rollouts(model, contexts, AGREEMENT_STEP, seed, sampler)
                curve = per_step_mean(agreement_by_step(rollouts), rollouts.valid)
                row[TILE_AT_16] = at_step(curve, AGREEMENT_STEP)
            rows.append(row)
            if progress is not None:
                progress.update()
    return rows
