"""Reads trajectory files: whole episodes, each verified against its checksum when read, for
inspection, training caches and export; damaged episodes are named, or skipped on request."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recorder.format import (
    CHECKSUM_FIELDS,
    INDEX_COLUMNS,
    STEP_DATASETS,
    DamagedEpisodeError,
    TrajectoryFormatError,
    checksum_row_intact,
    committed_episode_count,
    field_checksum,
)
from recorder.hdf5_io import HDF5_ERRORS, hdf5_reason, open_checked
from recorder.superblock import missing_bytes

ON_DAMAGE = ("raise", "skip", "defer")


@dataclass
class Episode:
    """One episode of T steps: frames (T+1, H, W, 3) with the reset frame first, the rest (T,)."""

    frames: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    seed: int


class TrajectoryFile:
    """A read-only view of a trajectory file: its settings and its committed episodes.

    ``on_damage``: "raise" (default) refuses a damaged episode index at open and raises
    DamagedEpisodeError when a damaged episode is read; "skip" reads every episode once at open and
    leaves the damaged ones out (listed in ``damaged``; ``rows`` maps episodes to file rows);
    "defer" opens whatever the index says and raises only when a damaged episode is read.
    """

    def __init__(self, path: str | Path, on_damage: str = "raise"):
        if on_damage not in ON_DAMAGE:
            raise ValueError(f"on_damage must be one of {ON_DAMAGE}, got {on_damage!r}")
        self.path = Path(path)
        self._file = open_checked(self.path, allow_truncated=on_damage != "raise")
        try:
            self.missing_bytes = missing_bytes(self.path)  # > 0: a truncated file, opened to rescue episodes
            self._read_index()
            self.damaged: list[DamagedEpisodeError] = []
            if on_damage == "raise" and self._index_damage:
                raise next(iter(self._index_damage.values()))  # the message says how to list them all
            keep = np.arange(self.num_rows)
            if on_damage == "skip":
                for row in range(self.num_rows):
                    try:
                        self.read_row(row)
                    except DamagedEpisodeError as error:
                        self.damaged.append(error)
                keep = np.setdiff1d(keep, [error.episode for error in self.damaged])
        except BaseException:
            self._file.close()
            raise
        self.rows = keep
        index = self._index
        self.frame_start, self.step_start = index["frame_start"][keep], index["step_start"][keep]
        self.lengths, self.seeds = index["length"][keep], index["seed"][keep]

    def _read_index(self) -> None:
        try:
            attrs, index = self._file.attrs, self._file["episodes"]
            self.env_id = str(attrs["env_id"])
            self.action_meanings = list(json.loads(attrs["action_meanings"]))
            self.frame_size = tuple(int(v) for v in attrs["frame_size"])
            self.fps = float(attrs["fps"])
            count = committed_episode_count(index)
            self._index = {name: index[name][:count] for name in INDEX_COLUMNS}
            self._checksums = index["checksum"][:count] if "checksum" in index else None
            fields = json.loads(index["checksum"].attrs["fields"]) if "checksum" in index else []
            sizes = {name: len(self._file[name]) for name in ("frames", *STEP_DATASETS)}
        except (*HDF5_ERRORS, json.JSONDecodeError) as error:
            raise TrajectoryFormatError(
                f"{self.path}: the episode index cannot be read ({hdf5_reason(error)}); the file is damaged "
                "beyond its episodes; record it again or restore it from a copy"
            ) from None
        if self._checksums is not None and fields != list(CHECKSUM_FIELDS):
            raise TrajectoryFormatError(f"{self.path}: episodes/checksum holds {fields}; update the project")
        self.num_rows = count
        self._index_damage = self._find_index_damage(sizes)

    def _find_index_damage(self, sizes: dict[str, int]) -> dict[int, DamagedEpisodeError]:
        """The rows of the episode index that cannot be trusted, and why; reads no episode data."""
        damage, index = {}, self._index
        length, frame_start, step_start = index["length"], index["frame_start"], index["step_start"]
        num_steps = min(sizes[name] for name in STEP_DATASETS)
        outside = {
            "frames": (length < 0) | (frame_start < 0) | (frame_start + length + 1 > sizes["frames"]),
            "steps": (length < 0) | (step_start < 0) | (step_start + length > num_steps),
        }
        for part, rows in outside.items():
            start = "episodes/frame_start" if part == "frames" else "episodes/step_start"
            for row in np.flatnonzero(rows):
                damage[int(row)] = DamagedEpisodeError.of(
                    self.path, int(row), ["episodes/length", start], f"points outside the {part}"
                )
        for row in range(self.num_rows if self._checksums is not None else 0):
            checksums = self._checksums[row]
            if not checksum_row_intact(checksums):
                damage[row] = DamagedEpisodeError.of(
                    self.path, row, ["episodes/checksum"], "checksum row mismatch"
                )
                continue
            bad = [
                f"episodes/{name}"
                for name in INDEX_COLUMNS
                if field_checksum(name, index[name][row]) != checksums[CHECKSUM_FIELDS.index(name)]
            ]
            if bad:  # more precise than "points outside": it names the column
                damage[row] = DamagedEpisodeError.of(
                    self.path, row, bad, "index value does not match its checksum"
                )
        return dict(sorted(damage.items()))

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def num_frames(self) -> int:
        return int((self.lengths + 1).sum())

    @property
    def num_steps(self) -> int:
        return int(self.lengths.sum())

    @property
    def has_checksums(self) -> bool:
        """False for files written before format 2: their episodes read unverified."""
        return self._checksums is not None

    def _read(self, row: int, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Datasets `names` of file row `row`, each checked against its checksum when the file has them."""
        if row in self._index_damage:
            raise self._index_damage[row]
        length = int(self._index["length"][row])
        data, problems = {}, {}
        for name in names:
            start = int(self._index["frame_start" if name == "frames" else "step_start"][row])
            stop = start + length + (name == "frames")
            try:
                data[name] = self._file[name][start:stop]
            except HDF5_ERRORS as error:
                problems[name] = f"cannot be read: {hdf5_reason(error)}"
                continue
            if self._checksums is not None:
                expected = self._checksums[row][CHECKSUM_FIELDS.index(name)]
                if field_checksum(name, data[name]) != expected:
                    problems[name] = "checksum mismatch: the stored bytes changed after they were written"
        if problems:
            detail = "; ".join(dict.fromkeys(problems.values()))
            raise DamagedEpisodeError.of(self.path, row, list(problems), detail)
        return data

    def read_row(self, row: int) -> Episode:
        """Episode at row `row` of the file (0 <= row < num_rows), verified; DamagedEpisodeError if damaged."""
        data = self._read(row, ("frames", *STEP_DATASETS))
        return Episode(seed=int(self._index["seed"][row]), **data)

    def episode(self, i: int) -> Episode:
        if not -len(self) <= i < len(self):
            raise IndexError(f"episode {i} out of range: {self.path} holds {len(self)} episodes")
        return self.read_row(int(self.rows[i % len(self)]))

    def episode_actions(self, i: int) -> np.ndarray:
        """Episode ``i``'s actions alone (its seed is ``seeds[i]``): cheap, the frames are not read."""
        return self._read(int(self.rows[i]), ("actions",))["actions"]

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TrajectoryFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load(path: str | Path, on_damage: str = "raise") -> TrajectoryFile:
    """Open a trajectory file; raises TrajectoryFormatError (a ValueError) naming the problem and fix.

    A damaged episode raises DamagedEpisodeError (file, episode, datasets) when read; with
    ``on_damage="skip"`` every episode is checked at open and the damaged ones are left out.
    """
    return TrajectoryFile(path, on_damage)


def split_episodes(
    n_episodes: int, held_out_fraction: float, seed: int = 0, *, seeds: Sequence[int] | None = None
) -> tuple[list[int], list[int]]:
    """Deterministically split episode ids into (train, held out); held out is never empty if asked for.

    With ``seeds`` (each episode's game seed), episodes sharing a seed always land on the same side,
    so no game is both trained on and held out; with unique seeds the split is the same as without.
    """
    if not 0.0 <= held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
    if seeds is None:
        groups = np.arange(n_episodes)
    else:
        if len(seeds) != n_episodes:
            raise ValueError(f"seeds holds {len(seeds)} values for {n_episodes} episodes")
        # Group ids in order of first appearance, so unique seeds give group i == episode i.
        _, first, groups = np.unique(np.asarray(seeds), return_index=True, return_inverse=True)
        groups = np.argsort(np.argsort(first))[groups]
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    order = np.random.default_rng(seed).permutation(n_groups)
    n_held_out = round(n_groups * held_out_fraction)
    if held_out_fraction > 0 and n_groups > 1:
        n_held_out = min(max(n_held_out, 1), n_groups - 1)
    held_out = np.isin(groups, order[:n_held_out])
    return np.flatnonzero(~held_out).tolist(), np.flatnonzero(held_out).tolist()
