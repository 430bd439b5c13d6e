"""The one-step sampler against today's, in one run on one machine: frames/s of WorldModelEnv.step
(one thread, alone and beside a CPU-bound process) and of WorldModelVectorEnv at batch 64 (one and
two threads, one thread beside the CPU-bound process, and handing agents latents on two threads
alone and on one beside the CPU-bound process), for the checkpoint's sampler, its network run as
one pass, distilled checkpoints, and student architectures (timed untrained: a network's speed does
not depend on its weights), each in torch and, with --runtimes, in ONNX Runtime. Writes
bench/results/one_step.md and a bar chart; on a GPU also the batched env at batch 256, 1,024, 4,096."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

import torch  # noqa: E402

from bench.results_file import cpu_name, write_results  # noqa: E402
from worldmodel.config import with_overrides  # noqa: E402
from worldmodel.env import DEFAULT_CHECKPOINT, load_world_model  # noqa: E402
from worldmodel.evaluate.speed import step_fps, vector_env_fps  # noqa: E402
from worldmodel.model import WorldModel  # noqa: E402
from worldmodel.onnx_runtime import RUNTIMES  # noqa: E402
from worldmodel.sampler import Sampler  # noqa: E402

COMPETITOR = "while True: pass"  # one core kept busy, as a browser tab or a build would
GPU_BATCHES = (256, 1024, 4096)


@dataclass
class Variant:
    name: str
    model: WorldModel
    sampler: Sampler  # what it plays with
    runtime: str = "torch"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="the teacher")
    parser.add_argument("--distilled", type=Path, nargs="*", default=[], help="distilled checkpoints")
    parser.add_argument(
        "--student", action="append", default=[], metavar="OVERRIDES",
        help='a student architecture as config overrides of the teacher\'s, e.g. "dit.num_layers=3"',
    )  # fmt: skip
    parser.add_argument(
        "--runtimes", nargs="+", default=["torch"], choices=RUNTIMES, help="runtimes to time each variant in"
    )
    parser.add_argument("--steps", type=int, default=200, help="timed single-env steps (median)")
    parser.add_argument("--batch-steps", type=int, default=30, help="timed batch-64 steps (median)")
    parser.add_argument("--note", default="", help="what else the machine was doing, for the results file")
    parser.add_argument("--out", type=Path, default=REPOSITORY / "bench" / "results" / "one_step.md")
    return parser.parse_args()


def variants(args) -> list[Variant]:
    teacher = load_world_model(args.checkpoint, "cpu")
    one_pass = teacher.sampler.replace(sampling_steps=1, guidance_scale=1.0)
    s = teacher.settings.sampler
    found = [
        Variant(
            f"teacher: {s.sampling_steps} steps, guidance {s.guidance_scale:g}", teacher, teacher.sampler
        ),
        Variant("teacher network, one pass", teacher, one_pass),
    ]
    for path in args.distilled:
        model = load_world_model(path, "cpu")
        found.append(Variant(f"distilled `{path}`", model, model.sampler))
    for overrides in args.student:
        torch.manual_seed(0)
        config = with_overrides(teacher.settings.config, overrides.split())
        model = WorldModel.from_config(config, list(teacher.settings.action_meanings)).eval()
        found.append(Variant(f"student `{overrides}` (untrained), one pass", model, one_pass))
    return [
        Variant(f"{v.name}, {runtime}", v.model, v.sampler, runtime) if len(args.runtimes) > 1 else v
        for v in found
        for runtime in args.runtimes
    ]


def measure(variant: Variant, args) -> dict[str, float]:
    """Frames/s of one variant: the single env at one thread, alone and beside a busy core, and the
    batched env at batch 64 on one and two threads (and the GPU batches when there is one)."""
    model, sampler, runtime, fps = variant.model, variant.sampler, variant.runtime, {}
    torch.set_num_threads(1)
    fps["single, 1 thread"] = step_fps(model, args.steps, 0, sampler, 10, runtime)
    with competing_process():
        fps["single, 1 thread, busy CPU"] = step_fps(model, args.steps, 0, sampler, 10, runtime)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        fps[f"batch 64, {threads} threads"] = vector_env_fps(
            model, 64, args.batch_steps, 0, sampler, 3, runtime
        )
    torch.set_num_threads(1)
    with competing_process():
        fps["batch 64, 1 thread, busy CPU"] = vector_env_fps(
            model, 64, args.batch_steps, 0, sampler, 3, runtime
        )
    torch.set_num_threads(2)  # an RL learner reading latents: no decoder pass at all
    fps["batch 64 latents, 2 threads"] = vector_env_fps(
        model, 64, args.batch_steps, 0, sampler, 3, runtime, observation="latents"
    )
    torch.set_num_threads(1)
    with competing_process():
        fps["batch 64 latents, 1 thread, busy CPU"] = vector_env_fps(
            model, 64, args.batch_steps, 0, sampler, 3, runtime, observation="latents"
        )
    if torch.cuda.is_available() and runtime == "torch":
        model.to("cuda")
        for batch in GPU_BATCHES:
            fps[f"GPU batch {batch}"] = vector_env_fps(model, batch, args.batch_steps, 0, sampler, warmup=3)
        model.to("cpu")
    torch.set_num_threads(1)
    return fps


@contextlib.contextmanager
def competing_process():
    """A CPU-bound process on one core while the block runs, as a user's other programs would be."""
    competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR])
    try:
        yield
    finally:
        competitor.kill()


def main() -> None:
    args = parse_args()
    load_before = os.getloadavg()[0]
    rows = []
    for variant in variants(args):
        rows.append((variant.name, measure(variant, args)))
        print(variant.name, {k: round(v, 1) for k, v in rows[-1][1].items()}, flush=True)
    write_report(args, rows, load_before, os.getloadavg()[0])


def write_report(args, rows, load_before: float, load_after: float) -> None:
    columns = list(rows[0][1])
    base = rows[0][1]
    table = [
        "| sampler | " + " | ".join(columns) + " | speed-up, single |",
        "|---|" + "---|" * (len(columns) + 1),
    ]
    for name, fps in rows:
        cells = " | ".join(f"{fps[c]:.1f}" for c in columns)
        table.append(f"| {name} | {cells} | {fps[columns[0]] / base[columns[0]]:.2f}x |")
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    lines = [
        "# One-step sampler: speed",
        "",
        f"Command: `{shlex.join(['python', *sys.argv])}`",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores{gpu}, torch {torch.__version__}; load average "
        f"{load_before:.1f} before / {load_after:.1f} after the run. {args.note}",
        "",
        f"Frames per second: median of {args.steps} `WorldModelEnv.step` calls (random keys), and of "
        f"{args.batch_steps} `WorldModelVectorEnv.step` calls at batch 64 (64 frames each). Each step samples "
        'the next latent, decodes the frame and predicts reward and end ("latents": the env hands agents '
        'latents, `observation="latents"`, and decodes nothing). "busy CPU": a `while True: pass` '
        "process ran beside it.",
        "",
        *table,
        "",
        f"![frames per second]({args.out.with_suffix('.png').name})",
        "",
    ]
    write_results(args.out, lines, lambda axis: plot(rows, axis))


def plot(rows, axis) -> None:
    import numpy as np

    columns = list(rows[0][1])
    width = 0.8 / len(rows)
    for index, (name, fps) in enumerate(rows):
        axis.bar(np.arange(len(columns)) + index * width, [fps[c] for c in columns], width, label=name)
    axis.axhline(100, color="grey", linestyle="--", linewidth=1, label="100 frames/s")
    axis.set_xticks(np.arange(len(columns)) + 0.4 - width / 2, columns, fontsize=8)
    axis.set_ylabel("frames per second")
    axis.set_yscale("log")
    axis.legend(fontsize=7)


if __name__ == "__main__":
    main()
