"""Measures the recorder: frames/s recording Pacman-v0 with the explorer into HDF5 in one process,
bytes per frame on disk, and random-window reads/s. Writes bench/results/recorder.md."""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

import recorder  # noqa: E402
from recorder import format as trajectory_format  # noqa: E402
from recorder.policies import make_policy  # noqa: E402
from recorder.record import action_meanings, make_recording_env, record_episodes, run_episode  # noqa: E402


def bench_compression(compression, episodes: list[dict], env, env_id: str, directory: Path) -> dict:
    """Write the pre-played episodes with `compression`; the game's own cost is timed separately."""
    trajectory_format.COMPRESSION = compression
    path = directory / f"bench-{compression}.h5"
    started = time.perf_counter()
    with recorder.TrajectoryWriter(path, env_id, action_meanings(env), (64, 64), 15) as writer:
        for episode in episodes:
            writer.add_episode(**episode)
    seconds = time.perf_counter() - started
    frames = sum(len(e["frames"]) for e in episodes)
    return {"path": path, "write_fps": frames / seconds, "bytes_per_frame": path.stat().st_size / frames}


def bench_windows(path: Path, window: int, reads: int) -> float:
    dataset = recorder.WindowDataset(path, window)
    order = np.random.default_rng(0).integers(len(dataset), size=reads)
    dataset[0]  # open the file outside the timing
    started = time.perf_counter()
    for i in order:
        dataset[int(i)]
    return reads / (time.perf_counter() - started)


def bench_end_to_end(env_id: str, episodes: int, path: Path) -> float:
    """Frames/s of what `python -m recorder --workers 1` does: play with the explorer and write, timed together."""
    env = make_recording_env(env_id)
    policy = make_policy("explore", env, seed=1, env_id=env_id)
    started = time.perf_counter()
    with recorder.TrajectoryWriter(path, env_id, action_meanings(env), (64, 64), 15) as writer:
        for episode in record_episodes(env, policy, env_id, "explore", range(episodes), None, 1, 64):
            writer.add_episode(**episode)
        frames = writer.num_frames
    return frames / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Pacman-v0")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "recorder.md"))
    args = parser.parse_args()

    env = make_recording_env(args.env)
    policy = make_policy("explore", env, seed=0, env_id=args.env)
    started = time.perf_counter()
    episodes = [run_episode(env, policy, seed, None, "explore") for seed in range(args.episodes)]
    play_seconds = time.perf_counter() - started
    frames = sum(len(e["frames"]) for e in episodes)
    play_fps = frames / play_seconds

    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for compression in ("lzf", "gzip"):
            result = bench_compression(compression, episodes, env, args.env, Path(directory))
            result["record_fps"] = 1 / (1 / play_fps + 1 / result["write_fps"])
            result["windows_per_s"] = bench_windows(result["path"], args.window, 2000)
            rows.append((compression, result))
        trajectory_format.COMPRESSION = "gzip"
        end_to_end_runs = [
            bench_end_to_end(args.env, args.episodes, Path(directory) / f"end-to-end-{run}.h5")
            for run in range(3)
        ]
        end_to_end_fps = sorted(end_to_end_runs)[1]

    command = "python bench/bench_recorder.py " + " ".join(sys.argv[1:])
    lines = [
        "# Recorder throughput",
        "",
        f"Command: `{command.strip()}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}  ",
        f"Data: {args.episodes} {args.env} episodes with the explorer policy, {frames} frames of 64x64x3.",
        "",
        f"Playing the game alone (env step + policy): {play_fps:,.0f} frames/s.",
        "",
        f"**Recording end to end in one process** (explorer + gzip writes, timed together as the CLI runs): "
        f"**{end_to_end_fps:,.0f} frames/s** (median of 3 runs: "
        + ", ".join(f"{run:,.0f}" for run in end_to_end_runs)
        + ").",
        "",
        "| compression | write only (frames/s) | record = play + write, one process (frames/s) "
        f"| bytes/frame on disk | random {args.window}-frame windows/s |",
        "|---|---|---|---|---|",
    ]
    for compression, r in rows:
        lines.append(
            f"| {compression} | {r['write_fps']:,.0f} | {r['record_fps']:,.0f} | "
            f"{r['bytes_per_frame']:,.0f} | {r['windows_per_s']:,.0f} |"
        )
    lines += [
        "",
        f'Raw frame: 12,288 bytes. Gzip is level {trajectory_format.GZIP_LEVEL}, the file default. "record" combines the measured play '
        "and write rates (1/(1/play + 1/write)): recording in one process is bound by the game, not by "
        "HDF5; use `--workers` to play several env copies.",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
