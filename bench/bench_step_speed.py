"""Frames per second of the learned game: WorldModelEnv.step alone and WorldModelVectorEnv at batch
1, 8 and 32, at the checkpoint's sampler defaults; writes bench/results/step_speed.md and a bar chart."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import torch

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

import envs  # noqa: E402
from bench.results_file import cpu_name, write_results  # noqa: E402
from worldmodel.config import load_config  # noqa: E402
from worldmodel.env import DEFAULT_CHECKPOINT, load_world_model  # noqa: E402
from worldmodel.evaluate.speed import step_fps, vector_env_fps  # noqa: E402
from worldmodel.model import WorldModel  # noqa: E402

WARMUP_STEPS = 10
BATCH_SIZES = (1, 8, 32)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint directory (default: checkpoints/pacman-64, else runs/pacman-64/checkpoint, "
                        "else an untrained model of --config: speed does not depend on training)")  # fmt: skip
    parser.add_argument("--config", type=Path, default=REPOSITORY / "configs" / "pacman-64.yaml")
    parser.add_argument(
        "--steps", type=int, default=200, help="timed steps per measurement (>= 200 for the report)"
    )
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()],
                        help="torch CPU thread counts to measure")  # fmt: skip
    parser.add_argument("--out", type=Path, default=REPOSITORY / "bench" / "results" / "step_speed.md")
    return parser.parse_args()


def load_model(args) -> tuple[WorldModel, str]:
    if args.checkpoint is not None:
        return load_world_model(args.checkpoint, "cpu"), f"checkpoint `{args.checkpoint}`"
    for candidate in (DEFAULT_CHECKPOINT, REPOSITORY / "runs" / "pacman-64" / "checkpoint"):
        if (candidate / "world_model.json").is_file():
            return load_world_model(candidate, "cpu"), f"checkpoint `{candidate.relative_to(REPOSITORY)}`"
    torch.manual_seed(0)
    model = WorldModel.from_config(load_config(args.config), list(envs.ACTION_MEANINGS)).eval()
    return (
        model,
        f"untrained model of `{args.config.relative_to(REPOSITORY)}` (no trained checkpoint existed yet)",
    )


def main() -> None:
    args = parse_args()
    model, source = load_model(args)
    load_before = os.getloadavg()[0]
    rows = []  # (device, threads, what, frames per second)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for threads in args.threads if device == "cpu" else [torch.get_num_threads()]:
            torch.set_num_threads(threads)
            model.to(device)
            fps = step_fps(model, args.steps, seed=0, warmup=WARMUP_STEPS)
            rows.append((device, threads, "WorldModelEnv.step", fps))
            print(f"{device} threads={threads} single env: {fps:.1f} frames/s", flush=True)
            for batch in BATCH_SIZES:
                fps = vector_env_fps(model, batch, args.steps, seed=0, warmup=WARMUP_STEPS)
                rows.append((device, threads, f"vector env, batch {batch}", fps))
                print(f"{device} threads={threads} batch {batch}: {fps:.1f} frames/s", flush=True)
    write_report(args, source, model, rows, load_before, os.getloadavg()[0])


def write_report(args, source, model, rows, load_before, load_after) -> None:
    sampler = model.settings.sampler
    command = shlex.join(["python", *sys.argv])
    lines = [
        "# WorldModelEnv step speed",
        "",
        f"Command: `{command}`",
        "",
        f"Model: {source}; K={model.settings.history_length}, "
        f"sampling steps {sampler.sampling_steps}, guidance scale {sampler.guidance_scale} "
        f"({'two passes batched as one' if sampler.guidance_scale != 1.0 else 'one pass'}), "
        f"context noise {sampler.context_noise}.",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"load average {load_before:.1f} before / {load_after:.1f} after the run"
        + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")
        + ".",
        "",
        f"Median over {args.steps} timed steps after {WARMUP_STEPS} warm-up steps; each step samples the next "
        "latent, decodes the frame and predicts reward and end. Frames per second = envs x steps per second.",
        "",
        "| device | torch threads | what | frames / s |",
        "|---|---|---|---|",
        *[f"| {device} | {threads} | {what} | {fps:.1f} |" for device, threads, what, fps in rows],
        "",
        f"![frames per second]({args.out.with_suffix('.png').name})",
        "",
    ]
    write_results(args.out, lines, lambda axis: plot(rows, axis))


def plot(rows, axis) -> None:
    labels = [f"{what}\n{device}, {threads} thr" for device, threads, what, _ in rows]
    bars = axis.bar(range(len(rows)), [fps for *_, fps in rows], color="#3b6ea8")
    axis.bar_label(bars, fmt="%.0f")
    axis.axhline(20, color="grey", linestyle="--", linewidth=1, label="20 frames/s target (single env)")
    axis.set_xticks(range(len(rows)), labels, fontsize=7)
    axis.set_ylabel("frames per second")
    axis.set_title("WorldModelEnv / WorldModelVectorEnv step speed")
    axis.legend(fontsize=8)


if __name__ == "__main__":
    main()
