"""Random windows of consecutive frames for training, with the actions that produced them (lazily
opened per process, so safe with DataLoader workers)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from recorder.format import RESET_ACTION, DamagedEpisodeError
from recorder.hdf5_io import HDF5_ERRORS, hdf5_reason, open_checked
from recorder.reader import load


class WindowDataset(Dataset):
    """Every run of `window` consecutive frames inside one episode, with the actions that produced them.

    Item: `frames` uint8 (window, H, W, 3); `actions` int64 (window,), where actions[j] produced
    frames[j] (0 = NOOP for the reset frame); `reward` and `terminated` of the transition into the
    last frame; `episode` and `frame_index` (of the first frame within its episode).
    """

    def __init__(
        self, path: str | Path, window: int, episodes: Sequence[int] | None = None, on_damage: str = "raise"
    ):
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.path, self.window, self.on_damage = Path(path), int(window), on_damage
        # Episode ids count the episodes `load(path, on_damage)` shows: with "skip", the intact ones.
        with load(self.path, on_damage) as trajectories:
            self.frame_size = trajectories.frame_size
            ids = np.arange(len(trajectories)) if episodes is None else np.asarray(episodes, dtype=np.int64)
            if len(ids) and (ids.min() < 0 or ids.max() >= len(trajectories)):
                raise IndexError(f"episode ids must be in [0, {len(trajectories)}) for {self.path}")
            self.episode_ids = ids
            self.rows = trajectories.rows[ids]  # file rows, to name a damaged episode
            self.frame_start = trajectories.frame_start[ids]
            self.step_start = trajectories.step_start[ids]
            self.lengths = trajectories.lengths[ids]
        windows_per_episode = np.maximum(self.lengths + 2 - self.window, 0)
        self._first_window = np.concatenate([[0], np.cumsum(windows_per_episode)])
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._steps: dict | None = None

    def __len__(self) -> int:
        return int(self._first_window[-1])

    def _datasets(self) -> h5py.File:
        # h5py handles do not survive fork; each worker process opens its own.
        if self._pid != os.getpid():
            self._file = open_checked(self.path, allow_truncated=self.on_damage != "raise")
            self._pid = os.getpid()
            # Steps are a few bytes each: holding them in memory leaves one HDF5 read per window.
            self._steps = {name: self._read_steps(name) for name in ("actions", "rewards", "terminated")}
        return self._file

    def _read_steps(self, name: str) -> np.ndarray:
        try:
            return self._file[name][:]
        except HDF5_ERRORS:
            pass  # part of the dataset is unreadable: read only the episodes this dataset serves
        values = np.zeros(len(self._file[name]), dtype=self._file[name].dtype)
        for row, start, length in zip(self.rows, self.step_start, self.lengths, strict=True):
            try:
                values[start : start + length] = self._file[name][start : start + length]
            except HDF5_ERRORS as error:
                raise DamagedEpisodeError.of(
                    self.path, int(row), [name], f"cannot be read: {hdf5_reason(error)}"
                ) from None
        return values

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        slot = int(np.searchsorted(self._first_window, i, side="right")) - 1
        start = i - int(self._first_window[slot])  # first frame's index inside the episode
        f = self._datasets()
        steps = self._steps
        frame_start, step_start = int(self.frame_start[slot]), int(self.step_start[slot])
        try:
            frames = f["frames"][frame_start + start : frame_start + start + self.window]
        except HDF5_ERRORS as error:
            raise DamagedEpisodeError.of(
                self.path, int(self.rows[slot]), ["frames"], f"cannot be read: {hdf5_reason(error)}"
            ) from None
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
