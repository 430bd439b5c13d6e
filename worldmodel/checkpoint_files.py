"""A checkpoint directory as files: written whole under a temporary name and swapped in, so a kill
never leaves a half-written checkpoint where a complete one is looked for; and a checksum of every
file, so a damaged weight file is named instead of loading as wrong weights."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

CHECKSUM_FILE = "checksums.json"


class CheckpointFileError(ValueError):
    """A checkpoint directory that is incomplete or damaged; the message names the file and the fix."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(directory: Path, names: list[str] | None = None) -> None:
    """Records the SHA-256 of every file below ``directory`` (or of ``names``) but the card and itself."""
    files = names or sorted(
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if p.is_file() and p.name not in (CHECKSUM_FILE, "README.md")
    )
    (directory / CHECKSUM_FILE).write_text(
        json.dumps({name: _sha256(directory / name) for name in files}, indent=1) + "\n"
    )


def verify_checksums(directory: Path) -> None:
    """Raises CheckpointFileError naming the first file that is missing or differs from its checksum.

    Checkpoints written before checksums existed have no CHECKSUM_FILE and are read as they are."""
    record = directory / CHECKSUM_FILE
    if not record.is_file():
        return
    try:
        expected = json.loads(record.read_text())
    except json.JSONDecodeError:
        raise CheckpointFileError(
            f"{record} is damaged; restore the checkpoint or retrain it with train.py"
        ) from None
    for name, checksum in expected.items():
        path = directory / name
        if not path.is_file():
            raise CheckpointFileError(
                f"checkpoint {directory} is missing {name}; restore it or retrain with train.py"
            )
        if _sha256(path) != checksum:
            raise CheckpointFileError(
                f"{path} does not match its checksum: the file is damaged. Restore the checkpoint from a copy "
                "or retrain it with train.py"
            )


def publish(path: Path, write: Callable[[Path], None]) -> None:
    """Runs ``write(staging)`` into a fresh directory beside ``path``, records checksums, then swaps it in
    for ``path``. Files of the old directory that ``write`` does not make (a model card) carry over."""
    staging, previous = path.with_name(f".{path.name}.new"), path.with_name(f".{path.name}.old")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    write(staging)
    if path.is_dir():
        for kept in path.iterdir():
            if kept.is_file() and not (staging / kept.name).exists() and kept.name != CHECKSUM_FILE:
                shutil.copy2(kept, staging / kept.name)
    write_checksums(staging)
    shutil.rmtree(previous, ignore_errors=True)
    if path.exists():
        path.rename(previous)
    staging.rename(path)  # the one step that publishes it: before it the old checkpoint is whole
    shutil.rmtree(previous, ignore_errors=True)


def interrupted_save_hint(path: Path) -> str:
    """What to do when ``path`` is missing but a save into it was interrupted between its two renames."""
    previous = path.with_name(f".{path.name}.old")
    if previous.is_dir():
        return (
            f"; a save into it was interrupted: the previous checkpoint is in {previous}, rename it to {path}"
        )
    return ""
