"""Appends whole episodes to a trajectory file, one writer per file: an episode reported committed
is complete and correct on disk whatever happens next (full disk, write error, kill, Ctrl-C)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import zlib
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from recorder.format import (
    EPISODE_DATASETS,
    STEP_DATASETS,
    TrajectoryFormatError,
    TrajectoryWriteError,
    chunk_aligned,
    committed_episode_count,
    create_empty,
    episode_checksums,
)
from recorder.hdf5_io import BROKEN_IN_THIS_PROCESS, hdf5_reason
from recorder.locking import exclusive_lock
from recorder.reader import load
from recorder.superblock import clear_crashed_writer_flags

SPACE_MARGIN = 2  # times the estimated size of an episode, so the estimate can be well off
SPACE_RESERVE = 1 << 20  # bytes kept free on top, for HDF5's own index and header growth
STEP_BYTES = sum(np.dtype(dtype).itemsize for dtype in STEP_DATASETS.values())


def lock_writer(path: Path) -> int:
    """Take the one-writer lock of the file `path` names, whatever the name: it is keyed on the
    resolved path, so a symlink or another relative path to a file being written is refused."""
    real = Path(os.path.realpath(path))
    try:
        fd = exclusive_lock(real.with_name(f".{real.name}.lock"))
    except OSError as error:
        raise TrajectoryWriteError(
            f"{path}: cannot write in {real.parent} ({error.strerror}); choose another --out"
        ) from None
    if fd is None:
        name = f"{path} (that is {real})" if real != Path(path).absolute() else f"{path}"
        raise TrajectoryFormatError(
            f"{name}: another recorder is writing to this file; wait for it or choose another --out"
        )
    return fd


def stored_chunk(dataset: h5py.Dataset, element: int) -> tuple[int, np.ndarray] | None:
    """(first element, values) of the chunk holding `element`, read from the file itself rather than
    from HDF5's caches; None where this dataset's compression cannot be decoded here (lzf)."""
    if dataset.compression not in (None, "gzip"):
        return None
    first = element // dataset.chunks[0] * dataset.chunks[0]
    filter_mask, raw = dataset.id.read_direct_chunk((first,) + (0,) * (dataset.ndim - 1))
    if dataset.compression == "gzip" and not filter_mask:
        raw = zlib.decompress(raw)
    return first, np.frombuffer(raw, dtype=dataset.dtype).reshape(dataset.chunks)


class TrajectoryWriter:
    """Appends whole episodes to a trajectory file; every episode is durable once `add_episode` returns.

    Commit protocol (docs/recorder-format.md): the file is written in HDF5 SWMR mode, whose ordered
    metadata flushes keep the on-disk file consistent at every instant. An episode's frames (from a
    fresh chunk) and steps are written past the committed end, flushed and read back; only then is
    its row appended to the `episodes` index, checksums before `length`, and read back. A kill or a
    write error before `length` lands leaves extra rows the reader ignores and the next append
    overwrites. Space for each episode is checked before writing it.
    """

    def __init__(
        self, path: str | Path, env_id: str, action_meanings: Sequence[str], frame_size, fps: float = 30.0
    ):
        self.path = Path(path)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.action_meanings = [str(m) for m in action_meanings]
        self._file = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise TrajectoryWriteError(
                f"{self.path}: cannot create {self.path.parent} ({error.strerror}); choose another --out"
            ) from None
        self._lock_fd = lock_writer(self.path)
        try:
            real = Path(os.path.realpath(self.path))
            if real.exists():
                with load(real) as existing:
                    self._check_matches(
                        existing.env_id, existing.frame_size, existing.action_meanings, env_id
                    )
                clear_crashed_writer_flags(real)
            else:
                create_empty(real, env_id, self.action_meanings, self.frame_size, fps)
            self._file = h5py.File(real, "a", libver="latest", locking=False)
            self._file.swmr_mode = True
            self._open_datasets()
        except OSError as error:
            self._release()
            raise TrajectoryWriteError(
                f"{self.path}: cannot open it for writing ({hdf5_reason(error)}); check its permissions "
                "and free space, or choose another --out"
            ) from None
        except BaseException:
            self._release()
            raise

    def _open_datasets(self) -> None:
        # Held open for the writer's life: HDF5 then reports a failed write when we flush, instead of
        # in a handle's destructor, where h5py can only print and ignore it.
        f = self._file
        self._data = {name: f[name] for name in ("frames", *STEP_DATASETS)}
        self._index = {name: f["episodes"][name] for name in EPISODE_DATASETS if name in f["episodes"]}
        self.num_episodes = committed_episode_count(f["episodes"])
        lengths = self._index["length"][: self.num_episodes]
        seeds = self._index["seed"][: self.num_episodes]
        self._seed_rows = {int(seed): row for row, seed in enumerate(seeds)}
        # Frames held, not where the next episode goes: episodes start on chunk boundaries.
        self.num_frames, self.num_steps, self._next_frame = int((lengths + 1).sum()), 0, 0
        if self.num_episodes:
            last = self.num_episodes - 1
            end = int(self._index["frame_start"][last]) + int(lengths[last]) + 1
            self._next_frame = chunk_aligned(end, self._data["frames"].chunks[0])
            self.num_steps = int(self._index["step_start"][last]) + int(lengths[last])

    @property
    def seeds(self) -> set[int]:
        """Seeds of the committed episodes: a seed is recorded once per file."""
        return set(self._seed_rows)

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
        if self._file is None:
            raise TrajectoryWriteError(f"{self.path}: this writer is closed; open a new one to append")
        steps = dict(zip(STEP_DATASETS, (actions, rewards, terminated, truncated), strict=True))
        data = {"frames": np.asarray(frames, dtype=np.uint8)}
        data.update({name: np.asarray(values, dtype=STEP_DATASETS[name]) for name, values in steps.items()})
        length = len(data["actions"])
        if data["frames"].shape != (length + 1, *self.frame_size, 3):
            raise ValueError(
                f"an episode of {length} steps needs frames of shape {(length + 1, *self.frame_size, 3)}, "
                f"got {data['frames'].shape}"
            )
        for name in STEP_DATASETS:
            if data[name].shape != (length,):
                raise ValueError(f"{name} must have shape ({length},), got {data[name].shape}")
        seed = int(seed)
        if seed in self._seed_rows:
            raise TrajectoryFormatError(
                f"{self.path}: seed {seed} is already recorded (episode {self._seed_rows[seed]}); "
                "record each seed once (python -m recorder picks the seeds a file lacks)"
            )
        row = {"frame_start": self._next_frame, "step_start": self.num_steps, "seed": seed, "length": length}
        self._check_free_space(data["frames"], length)
        try:
            self._write(data, row)
        except (OSError, RuntimeError) as error:
            self._abandon()
            raise TrajectoryWriteError(self._failure(error, seed)) from None
        self._seed_rows[seed] = self.num_episodes
        self.num_episodes += 1
        self.num_frames += length + 1
        self.num_steps += length
        self._next_frame = chunk_aligned(row["frame_start"] + length + 1, self._data["frames"].chunks[0])

    def _check_free_space(self, frames: np.ndarray, length: int) -> None:
        """Refuse an episode the disk may not hold, before a byte of it is written: HDF5 cannot be
        trusted to undo half an episode on a full disk, so it should never get there."""
        per_frame = frames[0].nbytes
        if self._data["frames"].compression == "gzip":  # the file's codec, on a chunk's worth of frames
            sample = frames[: self._data["frames"].chunks[0]]
            per_frame = len(zlib.compress(sample.tobytes(), 1)) / len(sample)
        needed = SPACE_MARGIN * (per_frame * len(frames) + STEP_BYTES * length) + SPACE_RESERVE
        free = shutil.disk_usage(Path(os.path.realpath(self.path)).parent).free
        if free < needed:
            raise TrajectoryWriteError(
                f"{self.path}: the disk is full: {free / 2**20:.1f} MiB free, and the next episode needs "
                f"about {needed / 2**20:.1f} MiB with margin. The file keeps its {self.num_episodes} "
                "committed episodes; free disk space or record to another --out, then run again to append."
            )

    def _write(self, data: dict[str, np.ndarray], row: dict[str, int]) -> None:
        for name, values in data.items():
            start = row["frame_start" if name == "frames" else "step_start"]
            dataset = self._data[name]
            dataset.resize(start + len(values), axis=0)
            dataset[start:] = values
            dataset.flush()
            self._verify(name, dataset, start, values)
        checksums = episode_checksums(data, row) if "checksum" in self._index else None
        values = {**row, "checksum": checksums}
        for name, column in self._index.items():
            column.resize(self.num_episodes + 1, axis=0)
            column[self.num_episodes] = values[name]
            column.flush()
            self._verify(f"episodes/{name}", column, self.num_episodes, np.asarray(values[name])[None])

    def _verify(self, name: str, dataset: h5py.Dataset, start: int, values: np.ndarray) -> None:
        """Read back from the file the chunks holding the first and last written element and compare:
        catches a write HDF5 accepted but the disk did not keep. The rest is covered by the checksums."""
        for element in {start, start + len(values) - 1} if len(values) else ():
            stored = stored_chunk(dataset, element)
            if stored is None:
                continue
            first, chunk = stored
            lo, hi = max(first, start), min(first + len(chunk), start + len(values))
            if not np.array_equal(chunk[lo - first : hi - first], values[lo - start : hi - start]):
                raise OSError(errno.EIO, f"{name} did not read back as written")

    def _failure(self, error: BaseException, seed: int) -> str:
        full = getattr(error, "errno", None) == errno.ENOSPC or "errno = 28" in str(error)
        reason = "the disk is full" if full else hdf5_reason(error)
        return (
            f"{self.path}: writing episode {self.num_episodes} (seed {seed}) failed: {reason}. The file keeps "
            f"the {self.num_episodes} episodes committed before it; free disk space or record to another "
            "--out, then run again to append."
        )

    def _abandon(self) -> None:
        """After a failed write: shrink every dataset back to the committed episodes, which drops the
        half-written one from HDF5's caches, so that closing writes nothing new to the file."""
        try:
            self._data["frames"].resize(self._next_frame, axis=0)  # a chunk boundary: no chunk is rewritten
            for name in STEP_DATASETS:
                self._data[name].resize(self.num_steps, axis=0)
            for column in self._index.values():
                column.resize(self.num_episodes, axis=0)
            self._file.flush()
            self._file.close()
        except (OSError, RuntimeError):
            # HDF5 (2.0) crashes releasing a dataset of a file whose flush failed, even at exit. So
            # the handles are kept for good, HDF5's descriptor is swapped for a read-only one so that
            # nothing it retries (at exit too) reaches the file, and no later writer in this process
            # may share HDF5's broken state: the file stays as the ordered SWMR flushes left it, as
            # after a kill, for the next process to append to.
            real = os.path.realpath(self.path)
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                read_only = os.open(real, os.O_RDONLY)
                os.dup2(read_only, self._file.id.get_vfd_handle())
                os.close(read_only)
            for handle in (self._file, *self._data.values(), *self._index.values()):
                ctypes.pythonapi.Py_IncRef(ctypes.py_object(handle))
            BROKEN_IN_THIS_PROCESS.add(real)
        self._file = self._data = self._index = None
        self._release()

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def close(self) -> None:
        if self._file is None:
            return
        try:
            self._file.flush()
            os.fsync(self._file.id.get_vfd_handle())  # once per run: committed episodes survive a power cut
            self._file.close()
        except (OSError, RuntimeError) as error:
            self._abandon()
            raise TrajectoryWriteError(
                f"{self.path}: closing failed ({hdf5_reason(error)}); its {self.num_episodes} committed "
                "episodes are on disk; check free space and the disk"
            ) from None
        self._file = None
        self._release()

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
