"""Frames per second of the batched env on a GPU: WorldModelVectorEnv.step at batch 256, 1,024 and
4,096 under random keys, for the shipped model and its one-pass student, handing agents frames or
latents. Writes bench/results/gpu.md and a bar chart.

    python bench/bench_gpu.py --steps 10
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

import torch  # noqa: E402

from bench.results_file import cpu_name, write_results  # noqa: E402
from worldmodel.env import DEFAULT_CHECKPOINT, load_world_model  # noqa: E402
from worldmodel.evaluate.speed import vector_env_fps  # noqa: E402

ONE_STEP = REPOSITORY / "checkpoints" / "pacman-64-one-step"


def measure(checkpoints: list[Path], batches: list[int], steps: int) -> list[dict]:
    rows = []
    for path in checkpoints:
        model = load_world_model(path, "cuda")
        for observation in ("frames", "latents"):
            for batch in batches:
                fps = vector_env_fps(model, batch, steps, 0, warmup=3, observation=observation)
                rows.append({"checkpoint": str(path), "observation": observation, "batch": batch, "fps": fps})
                print(rows[-1], flush=True)
    return rows


def write_report(out: Path, rows: list[dict], steps: int, machine: str, command: str) -> None:
    table = ["| checkpoint | agent reads | batch | frames/s |", "|---|---|---|---|"]
    table += [
        f"| `{Path(r['checkpoint']).name}` | {r['observation']} | {r['batch']:,} | {r['fps']:,.0f} |"
        for r in rows
    ]
    lines = [
        "# The batched env on a GPU",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine}.",
        "",
        f"Frames per second: median of {steps} `WorldModelVectorEnv.step` calls (after 3 warm-up calls) "
        "under random keys, each sampling the next latent of every copy, predicting reward and end, and "
        'decoding the frames ("latents": the env hands agents latents and decodes nothing).',
        "",
        *table,
        "",
        f"![frames per second]({out.with_suffix('.png').name})",
        "",
    ]

    def plot(axis) -> None:
        labels = [f"{Path(r['checkpoint']).name}\n{r['observation']}, {r['batch']}" for r in rows]
        axis.bar(range(len(rows)), [r["fps"] for r in rows], color="tab:green")
        axis.set_xticks(range(len(rows)), labels, fontsize=7, rotation=30, ha="right")
        axis.set_ylabel("frames per second")
        axis.set_title("WorldModelVectorEnv.step on a GPU")

    write_results(out, lines, plot)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=Path, nargs="+", default=[DEFAULT_CHECKPOINT, ONE_STEP])
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per setting (median)")
    parser.add_argument("--out", type=Path, default=REPOSITORY / "bench" / "results" / "gpu.md")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("no CUDA GPU visible to torch; this benchmark times the env on one")
    started = time.perf_counter()
    rows = measure(args.checkpoints, args.batches, args.steps)
    machine = (
        f"{torch.cuda.get_device_name()}, {cpu_name()}, torch {torch.__version__}; "
        f"{time.perf_counter() - started:.0f} s in all"
    )
    write_report(args.out, rows, args.steps, machine, shlex.join(["python", *sys.argv]))


if __name__ == "__main__":
    main()
