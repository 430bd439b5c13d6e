"""HDF5 access the reader and the writer share: opening a trajectory file read-only with every way it
can fail put in words, and HDF5's multi-line errors cut to their first line."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import h5py
import h5py.defs

from recorder.format import FORMAT_NAME, FORMAT_VERSION, INDEX_COLUMNS, STEP_DATASETS, TrajectoryFormatError
from recorder.superblock import missing_bytes

# HDF5 retries a metadata block whose checksum fails under SWMR reading, in case a live writer was
# half-way through it, backing off exponentially: its default of 100 tries takes hours on a damaged
# or truncated file. 24 tries take about 20 ms, far longer than a writer needs to finish a block.
SWMR_READ_ATTEMPTS = 24
HDF5_ERRORS = (OSError, RuntimeError, ValueError, KeyError)  # what h5py raises for unreadable storage
# Files a failed write left open in HDF5 in a broken state (see TrajectoryWriter._abandon): opening
# one again in this process would share that state, so only a new process may.
BROKEN_IN_THIS_PROCESS: set[str] = set()


def hdf5_reason(error: BaseException) -> str:
    """The first line of an HDF5 error, without the C library's call trace."""
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def open_swmr_read(path: Path) -> h5py.File:
    """Open with SWMR read access (a file being written, or left by a killed or cut-off writer)."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_fclose_degree(h5py.h5f.CLOSE_STRONG)
    fapl.set_file_locking(False, True)
    try:  # h5py does not wrap H5Pset_metadata_read_attempts; its own HDF5 library has it
        set_read_attempts = ctypes.CDLL(h5py.defs.__file__).H5Pset_metadata_read_attempts
        set_read_attempts.argtypes = [ctypes.c_int64, ctypes.c_uint]
        set_read_attempts(fapl.id, SWMR_READ_ATTEMPTS)
    except (OSError, AttributeError):
        pass  # an HDF5 without it: its default then
    flags = h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ
    return h5py.File(h5py.h5f.open(os.fsencode(path), flags, fapl=fapl))


def open_checked(path: Path, allow_truncated: bool = False) -> h5py.File:
    """Open a trajectory file read-only, turning every way it can be wrong into one clear error."""
    if os.path.realpath(path) in BROKEN_IN_THIS_PROCESS:
        raise TrajectoryFormatError(
            f"{path}: a write to it failed earlier in this process; read or append to it from a new process"
        )
    if not path.is_file():
        raise TrajectoryFormatError(
            f"{path}: no such file; check the path or record one with `python -m recorder`"
        )
    try:
        is_hdf5, missing = h5py.is_hdf5(path), missing_bytes(path)
    except OSError as error:
        raise TrajectoryFormatError(
            f"{path}: cannot be read ({error.strerror}); check its permissions"
        ) from None
    if not is_hdf5:
        raise TrajectoryFormatError(
            f"{path}: not an HDF5 file; pass a trajectory file written by `python -m recorder`"
        )
    if missing and not allow_truncated:
        raise TrajectoryFormatError(
            f"{path}: the file is truncated, {missing} bytes short of its end (copied or downloaded in part?); "
            f"copy it again, or keep its intact episodes with `python -m recorder.check {path} --repair OUT` "
            "or recorder.load(path, on_damage='skip')"
        )
    try:
        f = h5py.File(path, "r", locking=False)
    except OSError:
        # A recorder is writing it now, or was killed while writing: SWMR read access opens both.
        try:
            f = open_swmr_read(path)
        except OSError as error:
            raise TrajectoryFormatError(
                f"{path}: HDF5 cannot open it ({hdf5_reason(error)}); the file is damaged beyond its "
                "episodes; record it again or restore it from a copy"
            ) from None
    fmt, version = f.attrs.get("format"), f.attrs.get("format_version")
    missing_names = [n for n in ("frames", *STEP_DATASETS) if n not in f]
    missing_names += [f"episodes/{n}" for n in INDEX_COLUMNS if f"episodes/{n}" not in f]
    if fmt != FORMAT_NAME or version is None or missing_names:
        f.close()
        detail = f"missing {', '.join(missing_names)}" if missing_names else f"format attribute is {fmt!r}"
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
