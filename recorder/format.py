"""The trajectory file layout (one HDF5 file, many episodes), its per-episode checksums and its errors.
See docs/recorder-format.md for the layout table and the reasoning behind the commit protocol."""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

FORMAT_NAME = "pacman-worldmodel/trajectories"
FORMAT_VERSION = 2  # 2 added `episodes/checksum`; version-1 files (without it) still read and append
FRAMES_PER_CHUNK = 4
STEPS_PER_CHUNK = 1024
COMPRESSION = "gzip"  # ~3x smaller than lzf on Pacman frames, and faster to write
GZIP_LEVEL = 1  # level 4 saves 20% more disk but costs a fifth of one-process recording speed
STEP_DATASETS = {"actions": np.int64, "rewards": np.float32, "terminated": np.bool_, "truncated": np.bool_}
INDEX_COLUMNS = ("frame_start", "step_start", "seed", "length")
# The order rows are written in: `checksum` before `length`, because `length` commits an episode.
EPISODE_DATASETS = ("frame_start", "step_start", "seed", "checksum", "length")
UNWRITTEN = -1  # fill value of the index columns: a row whose `length` reads this is not committed
# One CRC32 per field; the last covers the others, so a damaged checksum row is told from damaged data.
CHECKSUM_FIELDS = ("frames", *STEP_DATASETS, *INDEX_COLUMNS, "checksum")
FIELD_DTYPES = {"frames": np.uint8, **STEP_DATASETS, **dict.fromkeys(INDEX_COLUMNS, np.int64)}


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


class TrajectoryFormatError(ValueError):
    """The base of every error about a trajectory file: missing, not HDF5, of another layout, damaged,
    not matching the recording, or not writable. Its message names the file, the problem and the fix."""


class DamagedEpisodeError(TrajectoryFormatError):
    """An episode whose data cannot be read or does not match its checksum: which file, episode, datasets."""

    def __init__(self, message: str, path=None, episode: int | None = None, datasets=(), detail: str = ""):
        super().__init__(message)
        self.path, self.episode, self.datasets, self.detail = path, episode, list(datasets), detail

    @classmethod
    def of(cls, path, episode: int, datasets, detail: str) -> DamagedEpisodeError:
        message = (
            f"{path}: episode {episode} is damaged in {', '.join(datasets)} ({detail}); "
            f"`python -m recorder.check {path}` lists the damaged episodes and `--repair OUT` copies the "
            "intact ones; recorder.load(path, on_damage='skip') reads the rest"
        )
        return cls(message, Path(path), episode, datasets, detail)

    def __reduce__(self):  # keeps the fields across processes (DataLoader workers)
        return type(self), (str(self), self.path, self.episode, self.datasets, self.detail)


class TrajectoryWriteError(TrajectoryFormatError):
    """Writing a file failed (full disk, I/O error, no permission); the file keeps its committed episodes."""


def field_checksum(name: str, values) -> int:
    """CRC32 of one field's values in their stored dtype, little-endian, so any reader recomputes it."""
    dtype = np.dtype(FIELD_DTYPES[name]).newbyteorder("<")
    return zlib.crc32(np.ascontiguousarray(values, dtype=dtype))


def episode_checksums(data: Mapping[str, np.ndarray], row: Mapping[str, int]) -> np.ndarray:
    """(len(CHECKSUM_FIELDS),) int64: the CRC32 of each dataset's slice and index value, then of those."""
    sums = [field_checksum(name, data[name]) for name in ("frames", *STEP_DATASETS)]
    sums += [field_checksum(name, row[name]) for name in INDEX_COLUMNS]
    sums.append(zlib.crc32(np.asarray(sums, dtype="<i8")))
    return np.asarray(sums, dtype=np.int64)


def checksum_row_intact(checksums: np.ndarray) -> bool:
    return int(checksums[-1]) == zlib.crc32(np.asarray(checksums[:-1], dtype="<i8"))


def committed_episode_count(index: h5py.Group) -> int:
    """Episodes before the first unwritten `length` row; later rows were left by a killed writer."""
    columns = [name for name in EPISODE_DATASETS if name in index]
    lengths = index["length"][: min(len(index[name]) for name in columns)]
    unwritten = np.flatnonzero(lengths == UNWRITTEN)
    return int(unwritten[0]) if len(unwritten) else len(lengths)


def chunk_aligned(frame: int, frames_per_chunk: int) -> int:
    """The first chunk boundary at or after `frame`: an episode starts there, so writing it never
    rewrites (and HDF5 never moves) a compressed chunk that holds a committed frame."""
    return -(-frame // frames_per_chunk) * frames_per_chunk


def create_empty(path: Path, env_id: str, action_meanings: list[str], frame_size, fps: float) -> None:
    """Create the layout under a temporary name and rename it, so a kill never leaves half a layout."""
    height, width = frame_size
    tmp_path = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with h5py.File(tmp_path, "w", libver="latest", locking=False) as f:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["env_id"] = env_id
        f.attrs["action_meanings"] = json.dumps(list(action_meanings))
        f.attrs["frame_size"] = np.array([height, width], dtype=np.int64)
        f.attrs["fps"] = float(fps)
        f.create_dataset(
            "frames",
            shape=(0, height, width, 3),
            maxshape=(None, height, width, 3),
            dtype=np.uint8,
            chunks=(FRAMES_PER_CHUNK, height, width, 3),
            compression=COMPRESSION,
            compression_opts=GZIP_LEVEL if COMPRESSION == "gzip" else None,
        )
        for name, dtype in STEP_DATASETS.items():
            f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(STEPS_PER_CHUNK,))
        episodes = f.create_group("episodes")
        for name in INDEX_COLUMNS:
            # A row of `length` reads -1 until its value lands, so a kill between growing the
            # column and writing the row can never commit an episode of length 0.
            episodes.create_dataset(
                name, shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(256,), fillvalue=UNWRITTEN
            )
        fields = len(CHECKSUM_FIELDS)
        checksum = episodes.create_dataset(
            "checksum",
            shape=(0, fields),
            maxshape=(None, fields),
            dtype=np.int64,
            chunks=(256, fields),
            fillvalue=UNWRITTEN,
        )
        checksum.attrs["fields"] = json.dumps(list(CHECKSUM_FIELDS))
    os.replace(tmp_path, path)
