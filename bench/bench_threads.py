"""How many torch threads WorldModelEnv.step should use: frames/s of the shipped model at 1 and 2
threads, alone and with a competing CPU-bound process, in one run. Writes bench/results/threads.md."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # run as a script from a checkout

import torch  # noqa: E402

from worldmodel.env import load_world_model  # noqa: E402
from worldmodel.evaluate.speed import step_fps  # noqa: E402

COMPETITOR = "while True: pass"  # one core kept busy, as a browser tab or a build would


def median_fps(threads: int, steps: int) -> float:
    """WorldModelEnv.step's median frames/s with torch at ``threads`` threads, as a user's env would run."""
    torch.set_num_threads(threads)
    return step_fps(load_world_model(None, "cpu"), steps, seed=0, warmup=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPOSITORY / "bench" / "results" / "threads.md")
    parser.add_argument("--note", default="", help="what else the machine was doing, for the results file")
    args = parser.parse_args()
    rows = []
    for busy in (False, True):
        competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR]) if busy else None
        try:
            for threads in (1, 2):
                fps = median_fps(threads, args.steps)
                rows.append(f"| {threads} | {'yes' if busy else 'no'} | {fps:.1f} |")
                print(rows[-1], flush=True)
        finally:
            if competitor is not None:
                competitor.kill()
    lines = [
        "# Threads for WorldModelEnv.step",
        "",
        f"Median frames/s over {args.steps} steps of the shipped model at its default sampler, "
        f"{os.cpu_count()} cores, {platform.machine()}, torch {torch.__version__}. {args.note}",
        "",
        f"`python bench/bench_threads.py --steps {args.steps}`",
        "",
        "| torch threads | competing CPU-bound process | frames/s |",
        "|---|---|---|",
        *rows,
        "",
    ]
    args.out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
