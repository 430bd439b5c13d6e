"""One evaluation of a checkpoint on held-out episodes: runs every measurement in a fixed order with
fixed seeds and writes metrics.json, report.md, plots and GIFs to the output directory."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import envs
from worldmodel.dream import AgentFileError
from worldmodel.evaluate import control, fidelity, report, speed
from worldmodel.evaluate.episodes import EvaluationError, choose_contexts, choose_windows, load_held_out
from worldmodel.evaluate.game_metrics import at_step, per_step_mean
from worldmodel.evaluate.names import PSNR_COPY_LAST, PSNR_TEACHER_FORCED, STEP_FPS, TILE_AT_16, WALLS
from worldmodel.evaluate.reward_end import reward_end_accuracy
from worldmodel.evaluate.sections import DRIFT_MARKS, families_section, long_play_section
from worldmodel.model import WorldModel
from worldmodel.onnx_runtime import check_runtime, on_onnx_runtime

STAGES = (
    "teacher forced",
    "rollouts",
    "families",
    "long play",
    "reward and end",
    "speed",
    "ablations",
    "report",
)


@dataclass(frozen=True)
class Plan:
    """How much of each measurement to run."""

    episodes: int = 8  # held-out episodes used (the first ones of the file)
    contexts_per_episode: int = 3  # free-running starts per episode: more rollouts, steadier shares
    windows: int = 256  # teacher-forced next-frame windows
    horizon: int = 64  # free-running steps compared with the real frames
    # Per action family: 16-step starts per episode for the step-16 share (12 x 40 episodes = 480:
    # random keys end about a third of the real games within 16 steps, and at least 300 must reach it),
    # 64-step starts per episode for the curve over steps 1-64, starts for ΔPSNR, teacher-forced steps.
    family_starts_per_episode: int = 12
    family_curve_starts_per_episode: int = 1
    delta_psnr_starts: int = 100
    family_windows: int = 256
    drift_steps: int = 1000
    drift_rollouts: int = 8  # long-play rollouts per family (human-like and random keys)
    ablation_windows: int = 64
    ablation_contexts: int = 40  # free-running starts per sampler setting (the control column)
    fps_steps: int = 30
    batch_fps_size: int = 8
    gif_episodes: int = 3


FULL = Plan()
QUICK = Plan(
    episodes=3, contexts_per_episode=1, windows=16, horizon=16,
    family_starts_per_episode=2, family_curve_starts_per_episode=1, delta_psnr_starts=4, family_windows=8,
    drift_steps=200, drift_rollouts=2, ablation_windows=8,
    ablation_contexts=2, fps_steps=5, batch_fps_size=4, gif_episodes=2,
)  # fmt: skip


class StageTimer:
    """Names the running stage on the progress bar, advances it when a stage ends, keeps the times."""

    def __init__(self, bar):
        self.bar, self.seconds = bar, {}
        self._current, self._started = None, 0.0

    def __call__(self, name: str | None) -> None:
        """Ends the running stage and starts ``name`` (None: ends the last one)."""
        now = time.perf_counter()
        if self._current is not None:
            self.seconds[self._current] = now - self._started
            self.bar.update()
        self._current, self._started = name, now
        if name is not None:
            self.bar.set_postfix_str(name)


def evaluate(
    checkpoint: str | Path,
    data: str | Path,
    out: str | Path,
    episodes: int | None = None,
    seed: int = 0,
    quick: bool = False,
    command: str = "",
    progress: bool = True,
    device: str = "cpu",
    runtime: str = "torch",
    agent: str | Path | None = None,
) -> dict:
    """Runs the evaluation and writes its outputs to ``out``; returns the metrics. ``runtime="onnx"``
    runs the denoiser and decoder in ONNX Runtime (``worldmodel.onnx_runtime``). ``agent``: the
    directory of a PPO agent trained by ``python -m worldmodel.dream``, scored as one more family."""
    started = time.perf_counter()
    plan = QUICK if quick else FULL
    if episodes is not None:
        plan = replace(plan, episodes=episodes)
    out = Path(out)
    model = WorldModel.load(checkpoint, device)
    if check_runtime(runtime) == "onnx":
        model = on_onnx_runtime(model, torch.get_num_threads())
    settings = model.settings
    player = None if agent is None else load_family_agent(agent, settings, device)
    held_out = load_held_out(model, data, plan.episodes)
    if episodes is not None and len(held_out) < episodes:
        raise EvaluationError(
            f"--episodes {episodes}: {data} holds only {len(held_out)} episodes long enough for the model's "
            f"history; pass --episodes {len(held_out)} or record more held-out episodes"
        )
    parsed = envs.game_spec(settings.env_id, settings.action_meanings).has_game_state
    rng = np.random.default_rng(seed)
    windows = choose_windows(held_out, settings.history_length, plan.windows, rng)
    contexts = choose_contexts(
        held_out, settings.history_length, plan.horizon, rng, plan.contexts_per_episode
    )
    out.mkdir(parents=True, exist_ok=True)
    metrics = {
        "checkpoint": str(checkpoint), "data": str(data), "env_id": settings.env_id, "seed": seed,
        "quick": quick, "plan": asdict(plan), "episodes_used": [e.index for e in held_out],
        "sampler_defaults": asdict(settings.sampler), "torch_threads": torch.get_num_threads(),
        "runtime": runtime, "agent": None if agent is None else str(agent),
        TILE_AT_16: float("nan"),
        **{f"{WALLS}_at_{mark}": float("nan") for mark in DRIFT_MARKS},
    }  # fmt: skip
    notes, curves = [], {}
    ablation_count = sum(len(values) for values in speed.ABLATIONS.values())
    bar = tqdm(total=len(STAGES) + ablation_count, desc="evaluating", unit="stage", disable=not progress)
    stage = StageTimer(bar)

    stage("teacher forced")
    metrics.update(teacher_forced_section(model, windows, seed, out))
    stage("rollouts")
    recorded = fidelity.recorded_rollouts(model, contexts, plan.horizon, seed)
    rollout_section(recorded, plan, out, metrics, curves)
    stage("families")
    families_section(model, held_out, plan, seed, out, metrics, curves, player)
    if not parsed:
        notes.append(
            f"Pacman's tile, the ghosts and long play skipped: no frame parser reads {settings.env_id} frames."
        )
    stage("long play")
    if parsed:
        long_play_section(model, contexts, plan, seed, out, metrics, curves, progress)
    stage("reward and end")
    metrics.update(reward_end_accuracy(model, held_out))
    stage("speed")
    metrics[STEP_FPS] = speed.step_fps(model, plan.fps_steps, seed)
    metrics[f"batched_fps_{plan.batch_fps_size}"] = speed.vector_env_fps(
        model, plan.batch_fps_size, plan.fps_steps, seed
    )
    stage("ablations")
    ablation_windows = windows[:: max(1, len(windows) // plan.ablation_windows)][: plan.ablation_windows]
    ablation_contexts = contexts[: plan.ablation_contexts]  # the first ones: one per episode first
    metrics["ablation_sizes"] = {"windows": len(ablation_windows), "contexts": len(ablation_contexts)}
    metrics["ablations"] = speed.ablations(
        model,
        ablation_windows,  # spread out over the held-out windows
        ablation_contexts,
        control.agreement_by_step if parsed else None,
        plan.fps_steps,
        seed,
        progress=bar,
    )
    stage("report")
    metrics.update(curves=curves, stage_seconds=stage.seconds, duration_s=time.perf_counter() - started)
    report.write(out, metrics, notes, command)
    stage(None)
    bar.close()
    return metrics


def load_family_agent(directory: str | Path, settings, device: str):
    """The trained agent of the "agent" family, refused early when it reads frames of another size."""
    from worldmodel.dream.agents import frame_shape, trained_agent  # Stable-Baselines3 only here

    agent = trained_agent(directory, device)
    height, width, _ = frame_shape(agent)
    if (height, width) != (settings.frame_size, settings.frame_size):
        raise AgentFileError(
            f"{directory}: the agent reads {height}x{width} frames, the world model makes "
            f"{settings.frame_size}x{settings.frame_size}; pass an agent trained on frames of that size"
        )
    return agent


def teacher_forced_section(model, windows, seed: int, out: Path) -> dict:
    scores = fidelity.teacher_forced(model, windows, seed)
    report.plot_teacher_forced(scores, out / "teacher_forced.png")
    return {
        PSNR_TEACHER_FORCED: scores["psnr"].mean(),
        PSNR_COPY_LAST: scores[PSNR_COPY_LAST].mean(),
        "ssim_teacher_forced": scores["ssim"].mean(),
        "ssim_copy_last": scores["ssim_copy_last"].mean(),
        "psnr_autoencoder": scores["psnr_autoencoder"].mean(),
        "teacher_forced_windows": len(windows),
    }


def rollout_section(recorded, plan: Plan, out: Path, metrics: dict, curves: dict) -> None:
    generated_psnr, held_psnr = fidelity.rollout_psnr(recorded)
    curves["rollout_psnr"] = per_step_mean(generated_psnr, recorded.valid)
    curves["rollout_psnr_copy_last"] = per_step_mean(held_psnr, recorded.valid)
    for mark in (1, 16, plan.horizon):
        metrics[f"rollout_psnr_at_{mark}"] = at_step(curves["rollout_psnr"], mark)
        metrics[f"rollout_psnr_copy_last_at_{mark}"] = at_step(curves["rollout_psnr_copy_last"], mark)
    report.plot_curves(
        out / "rollout_psnr.png", "PSNR (dB) against the recorded frame",
        {"model": curves["rollout_psnr"], "last context frame held": curves["rollout_psnr_copy_last"]},
    )  # fmt: skip
    for row in range(min(plan.gif_episodes, len(recorded.contexts))):
        report.save_side_by_side(out / f"rollout_{row}.gif", recorded, row)
