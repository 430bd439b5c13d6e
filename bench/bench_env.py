"""Measures the Pacman env: raw step speed, frame-parsing speed, and the explorer's maze coverage.

Usage: python bench/bench_env.py [--steps N] [--episodes 100]; writes bench/results/env.md and a
histogram of explorer episode lengths to bench/results/env_episode_lengths.png.
"""

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results_file import cpu_name  # noqa: E402
from envs import Explorer, PacmanEnv, parse_frame  # noqa: E402
from envs.maze import PACMAN_WALKABLE  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
STEP_LIMIT = 1000  # the registered max_episode_steps of Pacman-v0


def steps_per_second(steps: int, seed: int) -> float:
    """Raw PacmanEnv.step() calls per second under uniform random actions (resets not timed)."""
    env = PacmanEnv()
    env.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(5, size=steps).tolist()
    elapsed = 0.0
    for action in actions:
        start = time.perf_counter()
        terminated = env.step(action)[2]
        elapsed += time.perf_counter() - start
        if terminated:
            env.reset()
    return steps / elapsed


def parses_per_second(frames: int) -> float:
    env = PacmanEnv()
    frame, _ = env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(frames):
        parse_frame(frame)
    return frames / (time.perf_counter() - start)


def explore(episodes: int) -> tuple[np.ndarray, list[float], list[int], list[float]]:
    """Union of visited tiles, per-episode coverage fractions, lengths and scores of explorer play."""
    env, explorer = PacmanEnv(), Explorer()
    union = np.zeros_like(PACMAN_WALKABLE)
    coverages, lengths, scores = [], [], []
    for episode in range(episodes):
        frame, info = env.reset(seed=episode)
        explorer.reset(seed=episode)
        visited = np.zeros_like(PACMAN_WALKABLE)
        visited[env.state.pacman] = True
        length, terminated = 0, False
        while not terminated and length < STEP_LIMIT:
            frame, _, terminated, _, info = env.step(explorer(frame))
            visited[env.state.pacman] = True
            length += 1
        union |= visited
        coverages.append(float(visited[PACMAN_WALKABLE].mean()))
        lengths.append(length)
        scores.append(info["score"])
    return union, coverages, lengths, scores


def save_histogram(lengths: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(lengths, bins=np.linspace(0, STEP_LIMIT, 41), color="tab:blue")
    ax.set_xlabel("episode length (steps; 1000 = step limit)")
    ax.set_ylabel("episodes")
    ax.set_title(f"Explorer on Pacman-v0, {len(lengths)} episodes")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000, help="random steps per speed run")
    parser.add_argument("--runs", type=int, default=5, help="speed runs; the median is reported")
    parser.add_argument("--episodes", type=int, default=100, help="explorer episodes for coverage")
    args = parser.parse_args()

    speeds = [steps_per_second(args.steps, seed) for seed in range(args.runs)]
    parse_speed = parses_per_second(2000)
    start = time.perf_counter()
    union, coverages, lengths, scores = explore(args.episodes)
    explore_seconds = time.perf_counter() - start
    RESULTS.mkdir(parents=True, exist_ok=True)
    save_histogram(lengths, RESULTS / "env_episode_lengths.png")

    command = "python " + " ".join(shlex.quote(arg) for arg in ["bench/bench_env.py", *sys.argv[1:]])
    lengths_array = np.array(lengths)
    report = f"""# Pacman env benchmark

Command: `{command}`

Machine: {os.cpu_count()} CPU cores, {cpu_name()}, Python {platform.python_version()}, numpy {np.__version__}

## Speed
| measure | value |
|---|---|
| raw `PacmanEnv.step()` calls/s, random actions (median of {args.runs} runs x {args.steps:,} steps) | {np.median(speeds):,.0f} |
| all runs | {", ".join(f"{s:,.0f}" for s in speeds)} |
| `parse_frame` calls/s (one frame at a time) | {parse_speed:,.0f} |

## Explorer coverage ({args.episodes} episodes, seeds 0..{args.episodes - 1}, step limit {STEP_LIMIT})
Walkable tiles: the {int(PACMAN_WALKABLE.sum())} tiles Pacman can stand on (ghost pen excluded).

| measure | value |
|---|---|
| union of visited tiles over all episodes | {union[PACMAN_WALKABLE].mean():.1%} |
| mean per-episode fraction visited | {np.mean(coverages):.1%} (min {np.min(coverages):.1%}, max {np.max(coverages):.1%}) |
| episode length: mean / median / min / max | {lengths_array.mean():.0f} / {np.median(lengths_array):.0f} / {lengths_array.min()} / {lengths_array.max()} |
| episodes reaching the step limit | {(lengths_array >= STEP_LIMIT).sum()} |
| score: mean / max | {np.mean(scores):.1f} / {np.max(scores):.0f} |
| wall time of the coverage run | {explore_seconds:.1f} s |

Episode lengths: ![histogram](env_episode_lengths.png)
"""
    (RESULTS / "env.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
