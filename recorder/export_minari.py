"""Exports a trajectory file as a Minari dataset, for the offline-RL ecosystem.
Usage: python -m recorder.export_minari data/pacman.h5 pacman/explore-v0 [--out-dir DIR]"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

from recorder.format import TrajectoryFormatError
from recorder.reader import load


def export_minari(path: str | Path, dataset_id: str, out_dir: str | Path | None = None):
    """Write every episode of `path` as the Minari dataset `dataset_id`; returns the MinariDataset.

    Frames are stored raw (no JPEG), so the export is lossless. `out_dir` sets where Minari
    keeps datasets (MINARI_DATASETS_PATH); without it Minari's own default applies.
    """
    if out_dir is not None:
        os.environ["MINARI_DATASETS_PATH"] = str(Path(out_dir).resolve())
    import minari
    from minari.data_collector import EpisodeBuffer
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        parse_dataset_id(dataset_id)
    except ValueError:
        raise ValueError(
            f"bad Minari dataset id {dataset_id!r}: use (namespace/)name-v(version), e.g. pacman/explore-v0"
        ) from None
    if dataset_id in minari.list_local_datasets():
        raise ValueError(f"Minari dataset {dataset_id!r} exists already; bump its version or delete it")
    with load(path) as trajectories:
        height, width = trajectories.frame_size
        buffers = []
        for i in range(len(trajectories)):
            episode = trajectories.episode(i)
            buffers.append(
                EpisodeBuffer(
                    id=i,
                    seed=episode.seed,
                    observations=episode.frames,
                    actions=episode.actions,
                    rewards=episode.rewards.astype(np.float64),
                    terminations=episode.terminated,
                    truncations=episode.truncated,
                )
            )
        return minari.create_dataset_from_buffers(
            dataset_id,
            buffers,
            observation_space=gym.spaces.Box(0, 255, (height, width, 3), np.uint8),
            action_space=gym.spaces.Discrete(len(trajectories.action_meanings)),
            description=(
                f"{trajectories.env_id} recorded by the pacman-worldmodel recorder; "
                f"actions: {', '.join(trajectories.action_meanings)}"
            ),
            jpeg_encoding=False,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recorder.export_minari", description=__doc__.splitlines()[0]
    )
    parser.add_argument("file", help="trajectory file written by `python -m recorder`")
    parser.add_argument("dataset_id", help="Minari dataset id, e.g. pacman/explore-v0")
    parser.add_argument(
        "--out-dir", default=None, help="Minari datasets directory (default: MINARI_DATASETS_PATH)"
    )
    args = parser.parse_args(argv)
    try:
        dataset = export_minari(args.file, args.dataset_id, args.out_dir)
    except (TrajectoryFormatError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"exported {dataset.total_episodes} episodes ({dataset.total_steps} steps) as {args.dataset_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
