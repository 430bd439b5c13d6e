"""The trajectory file layout (one HDF5 file, many episodes) and the crash-safe writer that appends to it.
See docs/recorder-format.md for the layout table and the reasoning behind the commit protocol."""

from __future__ import annotations

import fcntl
import json
import os
import struct
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

FORMAT_NAME = "pacman-worldmodel/trajectories"
FORMAT_VERSION = 1
FRAMES_PER_CHUNK = 4
STEPS_PER_CHUNK = 1024
COMPRESSION = "gzip"  # ~3x smaller than lzf on Pacman frames, and faster to write
GZIP_LEVEL = 1  # level 4 saves 20% more disk but costs a fifth of one-process recording speed
STEP_DATASETS = {"actions": np.int64, "rewards": np.float32, "terminated": np.bool_, "truncated": np.bool_}
EPISODE_DATASETS = ("frame_start", "step_start", "seed", "length")  # `length` last: it commits an episode


class TrajectoryFormatError(ValueError):
    """A file that is missing, not HDF5, of another layout, or does not match the recording."""


def _lookup3(data: bytes) -> int:
    """Bob Jenkins' lookup3 `hashlittle` with seed 0: the checksum HDF5 puts on its superblock."""
    mask = 0xFFFFFFFF

    def rot(x: int, k: int) -> int:
        return ((x << k) | (x >> (32 - k))) & mask

    length = len(data)
    a = b = c = (0xDEADBEEF + length) & mask
    i = 0
    while length - i > 12:
        a = (a + int.from_bytes(data[i : i + 4], "little")) & mask
        b = (b + int.from_bytes(data[i + 4 : i + 8], "little")) & mask
        c = (c + int.from_bytes(data[i + 8 : i + 12], "little")) & mask
        a = ((a - c) & mask) ^ rot(c, 4)
        c = (c + b) & mask
        b = ((b - a) & mask) ^ rot(a, 6)
        a = (a + c) & mask
        c = ((c - b) & mask) ^ rot(b, 8)
        b = (b + a) & mask
        a = ((a - c) & mask) ^ rot(c, 16)
        c = (c + b) & mask
        b = ((b - a) & mask) ^ rot(a, 19)
        a = (a + c) & mask
        c = ((c - b) & mask) ^ rot(b, 4)
        b = (b + a) & mask
        i += 12
    if length == i:
        return c
    tail = data[i:] + bytes(12 - (length - i))
    a = (a + int.from_bytes(tail[0:4], "little")) & mask
    b = (b + int.from_bytes(tail[4:8], "little")) & mask
    c = (c + int.from_bytes(tail[8:12], "little")) & mask
    c = (c ^ b) - rot(b, 14) & mask
    a = (a ^ c) - rot(c, 11) & mask
    b = (b ^ a) - rot(a, 25) & mask
    c = (c ^ b) - rot(b, 16) & mask
    a = (a ^ c) - rot(c, 4) & mask
    b = (b ^ a) - rot(a, 14) & mask
    c = (c ^ b) - rot(b, 24) & mask
    return c


def clear_crashed_writer_flags(path: str | Path) -> bool:
    """Make a file left by a killed SWMR writer openable for writing again; True if it needed it.

    A killed writer leaves the "open for write" flags in the version-3 superblock, and its
    on-disk end-of-allocation lags the real file size. This is what `h5clear -s --increment`
    does: clear the flags and move the end of allocation to the end of the file, so new data
    never lands on top of space the killed writer used.
    """
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        superblock = bytearray(fh.read(48))
        if superblock[:8] != b"\x89HDF\r\n\x1a\n" or superblock[8] < 2 or superblock[11] == 0:
            return False
        superblock[11] = 0
        end_of_allocation = struct.unpack_from("<Q", superblock, 28)[0]
        struct.pack_into("<Q", superblock, 28, max(end_of_allocation, size))
        struct.pack_into("<I", superblock, 44, _lookup3(bytes(superblock[:44])))
        fh.seek(0)
        fh.write(superblock)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def committed_episode_count(index: h5py.Group) -> int:
    """Episodes before the first unwritten `length` row; later rows were left by a killed writer."""
    lengths = index["length"][: min(len(index[name]) for name in EPISODE_DATASETS)]
    unwritten = np.flatnonzero(lengths < 0)
    return int(unwritten[0]) if len(unwritten) else len(lengths)


def _create_empty(path: Path, env_id: str, action_meanings: list[str], frame_size, fps: float) -> None:
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
        for name in EPISODE_DATASETS:
            # A row of `length` reads -1 until its value lands, so a kill between growing the
            # column and writing the row can never commit an episode of length 0.
            episodes.create_dataset(
                name, shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(256,), fillvalue=-1
            )
    os.replace(tmp_path, path)


class TrajectoryWriter:
    """Appends whole episodes to a trajectory file; every episode is durable once `add_episode` returns.

    Commit protocol: the file is written in HDF5 SWMR mode, whose ordered metadata flushes keep
    the on-disk file consistent at every instant. An episode's frames and steps are written past
    the committed end and flushed; only then is its row appended to the `episodes` index, with
    `length` written last. A kill before that leaves extra rows the reader ignores and the next
    append overwrites.
    """

    def __init__(
        self, path: str | Path, env_id: str, action_meanings: Sequence[str], frame_size, fps: float = 30.0
    ):
        from recorder.reader import load

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.action_meanings = [str(m) for m in action_meanings]
        # One writer per file: our own lock, held until close and dropped by the kernel on a kill.
        self._lock_fd = os.open(self.path.with_name(f".{self.path.name}.lock"), os.O_CREAT | os.O_RDWR)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise TrajectoryFormatError(
                f"{self.path}: another recorder is writing to this file; wait for it or choose another --out"
            ) from None
        try:
            if self.path.exists():
                with load(self.path) as existing:
                    self._check_matches(
                        existing.env_id, existing.frame_size, existing.action_meanings, env_id
                    )
                clear_crashed_writer_flags(self.path)
            else:
                _create_empty(self.path, env_id, self.action_meanings, self.frame_size, fps)
            self._file = h5py.File(self.path, "a", libver="latest", locking=False)
            self._file.swmr_mode = True
        except BaseException:
            os.close(self._lock_fd)
            raise
        index = self._file["episodes"]
        self.num_episodes = committed_episode_count(index)
        if self.num_episodes:
            last = self.num_episodes - 1
            length = int(index["length"][last])
            self.num_frames = int(index["frame_start"][last]) + length + 1
            self.num_steps = int(index["step_start"][last]) + length
        else:
            self.num_frames = self.num_steps = 0

    def _check_matches(self, file_env_id, file_frame_size, file_meanings, env_id) -> None:
        problems = []
        if file_env_id != env_id:
            problems.append(f"env id {file_env_id!r} (recording {env_id!r})")
        if tuple(file_frame_size) != self.frame_size:
            problems.append(f"frame size {tuple(file_frame_size)} (recording {self.frame_size})")
        if list(file_meanings) != self.action_meanings:
            problems.append(f"action meanings {file_meanings} (recording {self.action_meanings})")
        if problems:
            raise TrajectoryFormatError(
                f"{self.path}: cannot append, the file holds {'; '.join(problems)}. "
                "Record into a new file with --out, or match the file's settings."
            )

    def add_episode(self, frames, actions, rewards, terminated, truncated, seed: int) -> None:
        """Commit one episode of T steps: T+1 frames (reset frame first) and T of everything else."""
        frames = np.asarray(frames, dtype=np.uint8)
        steps = {
            "actions": np.asarray(actions, dtype=np.int64),
            "rewards": np.asarray(rewards, dtype=np.float32),
            "terminated": np.asarray(terminated, dtype=np.bool_),
            "truncated": np.asarray(truncated, dtype=np.bool_),
        }
        length = len(steps["actions"])
        if frames.shape != (length + 1, *self.frame_size, 3):
            raise ValueError(
                f"an episode of {length} steps needs frames of shape {(length + 1, *self.frame_size, 3)}, "
                f"got {frames.shape}"
            )
        for name, values in steps.items():
            if values.shape != (length,):
                raise ValueError(f"{name} must have shape ({length},), got {values.shape}")

        f, n_frames, n_steps = self._file, self.num_frames, self.num_steps
        f["frames"].resize(n_frames + length + 1, axis=0)
        f["frames"][n_frames:] = frames
        f["frames"].flush()
        for name, values in steps.items():
            f[name].resize(n_steps + length, axis=0)
            f[name][n_steps:] = values
            f[name].flush()
        row = {"frame_start": n_frames, "step_start": n_steps, "seed": int(seed), "length": length}
        for name in EPISODE_DATASETS:
            column = f["episodes"][name]
            column.resize(self.num_episodes + 1, axis=0)
            column[self.num_episodes] = row[name]
            column.flush()
        self.num_episodes += 1
        self.num_frames += length + 1
        self.num_steps += length

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            os.close(self._lock_fd)

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
