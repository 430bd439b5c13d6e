"""Reads trajectory files: whole episodes for inspection and export, and random windows of
consecutive frames for training (lazily opened per process, so safe with DataLoader workers)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

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


class WindowDataset(Dataset):
    """Every run of `window` consecutive frames inside one episode, with the actions that produced them.

    Item: `frames` uint8 (window, H, W, 3); `actions` int64 (window,), where actions[j] produced
    frames[j] (0 = NOOP for the reset frame); `reward` and `terminated` of the transition into the
    last frame; `episode` and `frame_index` (of the first frame within its episode).
    """

    def __init__(self, path: str | Path, window: int, episodes: Sequence[int] | None = None):
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.path, self.window = Path(path), int(window)
        with load(self.path) as trajectories:
            self.frame_size = trajectories.frame_size
            ids = np.arange(len(trajectories)) if episodes is None else np.asarray(episodes, dtype=np.int64)
            if len(ids) and (ids.min() < 0 or ids.max() >= len(trajectories)):
                raise IndexError(f"episode ids must be in [0, {len(trajectories)}) for {self.path}")
            self.episode_ids = ids
            self.frame_start = trajectories.frame_start[ids]
            self.step_start = trajectories.step_start[ids]
            lengths = trajectories.lengths[ids]
        windows_per_episode = np.maximum(lengths + 2 - self.window, 0)
        self._first_window = np.concatenate([[0], np.cumsum(windows_per_episode)])
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._steps: dict | None = None

    def __len__(self) -> int:
        return int(self._first_window[-1])

    def _datasets(self) -> h5py.File:
        # h5py handles do not survive fork; each worker process opens its own.
        if self._pid != os.getpid():
            self._file = _open_checked(self.path)
            self._pid = os.getpid()
            # Steps are a few bytes each: holding them in memory leaves one HDF5 read per window.
            self._steps = {name: self._file[name][:] for name in ("actions", "rewards", "terminated")}
        return self._file

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        slot = int(np.searchsorted(self._first_window, i, side="right")) - 1
        start = i - int(self._first_window[slot])  # first frame's index inside the episode
        f = self._datasets()
        steps = self._steps
        frame_start, step_start = int(self.frame_start[slot]), int(self.step_start[slot])
        frames = f["frames"][frame_start + start : frame_start + start + self.window]
        # Frame k (k >= 1) was produced by step k-1; steps [first, last] cover frames start..end.
        first_step = max(start - 1, 0)
        last_step = start + self.window - 2
        if last_step >= first_step:
            actions = steps["actions"][step_start + first_step : step_start + last_step + 1]
            reward = steps["rewards"][step_start + last_step]
            terminated = steps["terminated"][step_start + last_step]
        else:
            actions, reward, terminated = np.zeros(0, np.int64), 0.0, False
        if start == 0:
            actions = np.concatenate([[RESET_ACTION], actions])
        return {
            "frames": torch.from_numpy(frames),
            "actions": torch.as_tensor(actions, dtype=torch.int64),
            "reward": torch.tensor(reward, dtype=torch.float32),
            "terminated": torch.tensor(bool(terminated)),
            "episode": int(self.episode_ids[slot]),
            "frame_index": start,
        }

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_file"], state["_pid"], state["_steps"] = None, None, None
        return state
