"""Exports a trajectory file as a Minari dataset, for the offline-RL ecosystem, with the spec of the
env it was recorded from, so that ``dataset.recover_environment()`` gives that env back.
Usage: python -m recorder.export_minari data/pacman.h5 pacman/explore-v0 [--out-dir DIR] [--author NAME]"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np

import envs
from recorder.format import TrajectoryFormatError
from recorder.reader import load
from recorder.record import RecordingError, make_recording_env

# Minari asks for these to publish a dataset; a local export may leave them out, and then need not
# print four warnings about them.
PUBLISHING_FIELDS = ("code_permalink", "author", "author_email", "algorithm_name")


def recorded_env(env_id: str, frame_size: tuple[int, int], num_actions: int) -> gym.Env:
    """The env a file was recorded from, rebuilt as the recorder built it (adapters included)."""
    height, width = frame_size
    try:
        env = make_recording_env(env_id, frame_size=height)
    except RecordingError as error:
        raise RecordingError(
            f"{error}; the export stores the env's spec so that recover_environment() can rebuild "
            "it: install the package that registers it, or pass --no-env-spec to export the data alone"
        ) from None
    if env.observation_space.shape != (height, width, 3) or env.action_space.n != num_actions:
        env.close()
        raise RecordingError(
            f"{env_id} now gives {env.observation_space.shape} frames and {env.action_space.n} actions, "
            f"but the file holds {(height, width, 3)} and {num_actions}; pass --no-env-spec to export "
            "the data alone"
        )
    return env


def export_minari(
    path: str | Path,
    dataset_id: str,
    out_dir: str | Path | None = None,
    env_spec: bool = True,
    **publishing,
):
    """Write every episode of `path` as the Minari dataset `dataset_id`; returns the MinariDataset.

    Frames are stored raw (no JPEG), so the export is lossless. `out_dir` sets where Minari
    keeps datasets (MINARI_DATASETS_PATH); without it Minari's own default applies. With `env_spec`
    the dataset carries the recorded env's spec (for ALE games, the ALE spec with our adapters);
    `publishing` takes Minari's code_permalink, author, author_email and algorithm_name.
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
        num_actions = len(trajectories.action_meanings)
        env = recorded_env(trajectories.env_id, trajectories.frame_size, num_actions) if env_spec else None
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
        # Rebuilding the env needs this project (its adapters and Pacman-v0), and ale-py for ALE games.
        package = envs.gymnasium_package(trajectories.env_id)
        requirements = ["pacman-worldmodel"] + ([package] if package else [])
        with warnings.catch_warnings():
            for field in PUBLISHING_FIELDS:
                if publishing.get(field) is None:
                    warnings.filterwarnings(
                        "ignore", message=f"`{field}` is set to None", category=UserWarning
                    )
            if env is None:
                warnings.filterwarnings("ignore", message="`eval_env` is set to None", category=UserWarning)
                warnings.filterwarnings("ignore", message="env_spec is None", category=UserWarning)
            try:
                return minari.create_dataset_from_buffers(
                    dataset_id,
                    buffers,
                    env=env,
                    eval_env=env,
                    observation_space=gym.spaces.Box(0, 255, (height, width, 3), np.uint8),
                    action_space=gym.spaces.Discrete(num_actions),
                    description=(
                        f"{trajectories.env_id} recorded by the pacman-worldmodel recorder; "
                        f"actions: {', '.join(trajectories.action_meanings)}"
                    ),
                    requirements=requirements if env is not None else None,
                    jpeg_encoding=False,
                    **publishing,
                )
            finally:
                if env is not None:
                    env.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recorder.export_minari", description=__doc__.splitlines()[0]
    )
    parser.add_argument("file", help="trajectory file written by `python -m recorder`")
    parser.add_argument("dataset_id", help="Minari dataset id, e.g. pacman/explore-v0")
    parser.add_argument(
        "--out-dir", default=None, help="Minari datasets directory (default: MINARI_DATASETS_PATH)"
    )
    parser.add_argument(
        "--no-env-spec",
        action="store_true",
        help="export the data alone, for a game that cannot be made here (recover_environment() then fails)",
    )
    for field in PUBLISHING_FIELDS:
        parser.add_argument(
            f"--{field.replace('_', '-')}", default=None, help="stored in the dataset's metadata"
        )
    args = parser.parse_args(argv)
    publishing = {field: getattr(args, field) for field in PUBLISHING_FIELDS}
    try:
        dataset = export_minari(args.file, args.dataset_id, args.out_dir, not args.no_env_spec, **publishing)
    except (TrajectoryFormatError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"exported {dataset.total_episodes} episodes ({dataset.total_steps} steps) as {args.dataset_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
