"""Reads trajectory files: whole episodes for inspection and export, the train/held-out split and
the action-window convention (the windows training reads are in recorder/windows.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from recorder.format import (
    EPISODE_DATASETS,
    FORMAT_NAME,
    FORMAT_VERSION,
    STEP_DATASETS,
    TrajectoryFormatError,
    committed_episode_count,
)


@dataclass
class Episode:
    """One episode of T steps: frames (T+1, H, W, 3) with the reset frame first, the rest (T,)."""

    frames: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    seed: int


def _open_checked(path: Path) -> h5py.File:
    """Open a trajectory file read-only, turning every way it can be wrong into one clear error."""
    if not path.is_file():
        raise TrajectoryFormatError(
            f"{path}: no such file; check the path or record one with `python -m recorder`"
        )
    if not h5py.is_hdf5(path):
        raise TrajectoryFormatError(
            f"{path}: not an HDF5 file; pass a trajectory file written by `python -m recorder`"
        )
    try:
        f = h5py.File(path, "r", locking=False)
    except OSError:
        # A recorder is writing it now, or was killed while writing: SWMR read access opens both.
        try:
            f = h5py.File(path, "r", locking=False, swmr=True)
        except OSError as error:
            raise TrajectoryFormatError(f"{path}: HDF5 file cannot be opened ({error})") from None
    fmt = f.attrs.get("format")
    version = f.attrs.get("format_version")
    missing = [n for n in ("frames", *STEP_DATASETS) if n not in f]
    missing += [f"episodes/{n}" for n in EPISODE_DATASETS if f"episodes/{n}" not in f]
    if fmt != FORMAT_NAME or version is None or missing:
        f.close()
        detail = f"missing {', '.join(missing)}" if missing else f"format attribute is {fmt!r}"
        raise TrajectoryFormatError(
            f"{path}: HDF5 file of another layout ({detail}), not a {FORMAT_NAME!r} file; "
            "pass a file written by `python -m recorder`"
        )
    if int(version) > FORMAT_VERSION:
        f.close()
        raise TrajectoryFormatError(
            f"{path}: format_version {int(version)} is newer than this code reads ({FORMAT_VERSION}); "
            "update the project to read it"
        )
    return f


class TrajectoryFile:
    """A read-only view of a trajectory file: its settings and its committed episodes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._file = _open_checked(self.path)
        attrs = self._file.attrs
        self.env_id = str(attrs["env_id"])
        self.action_meanings = list(json.loads(attrs["action_meanings"]))
        self.frame_size = tuple(int(v) for v in attrs["frame_size"])
        self.fps = float(attrs["fps"])
        index = self._file["episodes"]
        count = committed_episode_count(index)
        self.frame_start = index["frame_start"][:count]
        self.step_start = index["step_start"][:count]
        self.lengths = index["length"][:count]
        self.seeds = index["seed"][:count]

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def num_frames(self) -> int:
        return int((self.lengths + 1).sum())

    @property
    def num_steps(self) -> int:
        return int(self.lengths.sum())

    def episode(self, i: int) -> Episode:
        if not -len(self) <= i < len(self):
            raise IndexError(f"episode {i} out of range: {self.path} holds {len(self)} episodes")
        i %= len(self)
        length, frame_start, step_start = (
            int(self.lengths[i]),
            int(self.frame_start[i]),
            int(self.step_start[i]),
        )
        steps = {name: self._file[name][step_start : step_start + length] for name in STEP_DATASETS}
        return Episode(
            frames=self._file["frames"][frame_start : frame_start + length + 1],
            seed=int(self.seeds[i]),
            **steps,
        )

    def episode_actions(self, i: int) -> np.ndarray:
        """Episode ``i``'s actions alone (its seed is ``seeds[i]``): cheap, the frames are not read."""
        start, length = int(self.step_start[i]), int(self.lengths[i])
        return self._file["actions"][start : start + length]

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TrajectoryFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load(path: str | Path) -> TrajectoryFile:
    """Open a trajectory file; raises TrajectoryFormatError (a ValueError) naming the problem and fix."""
    return TrajectoryFile(path)


def split_episodes(n_episodes: int, held_out_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Deterministically split episode ids into (train, held out); held out is never empty if asked for."""
    if not 0.0 <= held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
    order = np.random.default_rng(seed).permutation(n_episodes)
    n_held_out = round(n_episodes * held_out_fraction)
    if held_out_fraction > 0 and n_episodes > 1:
        n_held_out = min(max(n_held_out, 1), n_episodes - 1)
    return sorted(order[n_held_out:].tolist()), sorted(order[:n_held_out].tolist())


RESET_ACTION = 0  # NOOP stands for the action that "produced" an episode's reset frame


def producing_actions(actions: np.ndarray) -> np.ndarray:
    """(T+1,) the action that produced each of an episode's T+1 frames: RESET_ACTION for the reset
    frame, then ``actions[t]`` for frame t+1. The convention of WindowDataset and of the world model."""
    return np.concatenate([[RESET_ACTION], actions]).astype(np.int64)


def action_window(produced_by: np.ndarray, end: int, length: int) -> np.ndarray:
    """(length,) the actions that produced frames end-length .. end-1 of an episode (``produced_by``
    from ``producing_actions``); before the reset frame no key was pressed, so RESET_ACTION."""
    window = np.full(length, RESET_ACTION, dtype=np.int64)
    taken = produced_by[max(0, end - length) : end]
    window[length - len(taken) :] = taken
    return window
