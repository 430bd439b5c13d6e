"""Measures how long each command takes to start (wall time of `--help` or of the import, median of
several runs) and which heavy libraries it loads. Writes bench/results/import_time.md.

    python bench/bench_import_time.py --runs 5 [--compare DIR]   # DIR: another checkout, e.g. the code before
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "diffusers", "accelerate", "minari")
# What a user types, as python arguments; each runs in the checkout it measures.
COMMANDS = {
    "python -c pass (the interpreter alone)": ["-c", "pass"],
    "import envs": ["-c", "import envs"],
    "import recorder": ["-c", "import recorder"],
    "python -m recorder --help": ["-m", "recorder", "--help"],
    "python play.py --help": ["play.py", "--help"],
    "python train.py --help": ["train.py", "--help"],
    "import worldmodel.env": ["-c", "import worldmodel.env"],
}
# Runs a command in-process, then prints which heavy libraries it left in sys.modules.
PROBE = """
import json, runpy, sys
arguments = json.loads(sys.argv[1])
try:
    if arguments[0] == "-c":
        sys.argv = ["-c"]
        exec(arguments[1])
    elif arguments[0] == "-m":
        sys.argv = arguments[1:]  # the module's name stands where its path will be
        runpy.run_module(arguments[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = arguments
        runpy.run_path(arguments[0], run_name="__main__")
except SystemExit:
    pass
print(json.dumps([name for name in {heavy} if name in sys.modules]))
"""


def environment() -> dict:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH",)}
    env.update(OMP_NUM_THREADS="1", SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
    return env


def seconds_to_start(checkout: Path, arguments: list[str], runs: int) -> list[float]:
    times = []
    for run in range(runs + 1):  # the first run writes the bytecode caches and is not counted
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, *arguments],
            cwd=checkout,
            env=environment(),
            capture_output=True,
            check=True,
            timeout=300,
        )
        if run:
            times.append(time.perf_counter() - started)
    return times


def heavy_modules(checkout: Path, arguments: list[str]) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), json.dumps(arguments)],
        cwd=checkout,
        env=environment(),
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(result.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per command (median reported)")
    parser.add_argument(
        "--compare", type=Path, default=None, help="another checkout to measure beside this one"
    )
    parser.add_argument("--compare-label", default="before", help="column name of --compare")
    parser.add_argument("--out", default=str(REPOSITORY / "bench" / "results" / "import_time.md"))
    args = parser.parse_args()
    checkouts = {"now": REPOSITORY}
    if args.compare is not None:
        checkouts = {args.compare_label: args.compare.resolve(), **checkouts}
    rows = []
    for command, arguments in COMMANDS.items():
        row = {"command": command}
        for label, checkout in checkouts.items():
            times = seconds_to_start(checkout, arguments, args.runs)
            row[label] = statistics.median(times)
            row[f"{label} loads"] = heavy_modules(checkout, arguments)
            print(
                f"{command} [{label}]: {row[label]:.2f} s ({', '.join(f'{t:.2f}' for t in times)})",
                flush=True,
            )
        rows.append(row)

    labels = list(checkouts)
    lines = [
        "# Start-up time of each command",
        "",
        f"Command: `python bench/bench_import_time.py --runs {args.runs}"
        + (f" --compare {args.compare} --compare-label '{args.compare_label}'`" if args.compare else "`")
        + "  ",
        f"Machine: {platform.machine()}, {platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs shared with other work  ",
        "Wall time of the whole process (interpreter start included), median of "
        f"{args.runs} runs after one that warms the bytecode caches; OMP_NUM_THREADS=1, SDL dummy drivers.",
        "",
        "| command | "
        + " | ".join([*(f"{label} (s)" for label in labels), *(f"loads ({label})" for label in labels)])
        + " |",
        "|---|" + "---:|" * len(labels) + "---|" * len(labels),
    ]
    for row in rows:
        times = " | ".join(f"{row[label]:.2f}" for label in labels)
        loads = " | ".join(", ".join(row[f"{label} loads"]) or "none" for label in labels)
        lines.append(f"| `{row['command']}` | {times} | {loads} |")
    lines += [
        "",
        "The real games (`envs`) and the recorder need neither torch nor diffusers; `WindowDataset`, the",
        "one torch part of the recorder, loads on first use. `train.py` reads its arguments before",
        "importing torch. `worldmodel.env` needs both to run the model: diffusers' package imports every",
        "model class it ships and torch._dynamo, which is most of its time.",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
