"""The run directory's guards: one train.py at a time in it, whatever path names it, and one model
config for its whole life (a setting added since the run began reads as its default)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from recorder.locking import exclusive_lock
from worldmodel.config import WorldModelConfig, load_config

# Sections whose change makes earlier weights meaningless; train, flow and sampler may change freely.
MODEL_SECTIONS = ("env_id", "frame_size", "history_length", "action_window", "vae", "dit", "heads")


class RunMismatchError(ValueError):
    """An output directory that holds a run of another config, or that another train.py is using."""


_run_locks: dict[Path, int] = {}  # held until the process exits; the kernel drops them on a kill


def lock_run(run_dir: Path) -> None:
    """One train.py per run directory, whatever path names it: a second one is refused, not mixed in.

    Only the first process of a launch locks it; the others are the same run.
    """
    if int(os.environ.get("RANK", "0")) != 0:
        return
    run_dir = run_dir.resolve()
    if run_dir in _run_locks:  # this process holds it already (train.main called again)
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        descriptor = exclusive_lock(run_dir / ".train.lock")
    except OSError as error:
        raise RunMismatchError(
            f"cannot write the run directory {run_dir} ({error.strerror}); choose another --out"
        ) from None
    if descriptor is None:
        raise RunMismatchError(
            f"{run_dir} is being trained by another train.py; wait for it to finish, stop it, or choose another --out"
        )
    _run_locks[run_dir] = descriptor


def check_run_config(run_dir: Path, config: WorldModelConfig) -> None:
    """Writes the run's config the first time; afterwards refuses a config whose model differs."""
    path = run_dir / "config.yaml"
    current = config.to_dict()
    if path.is_file():
        # Read through load_config, so a setting added since the run began reads as its default.
        differences = model_differences(load_config(path), config)
        if differences:
            raise RunMismatchError(
                f"{run_dir} holds a run of another model config (different: {', '.join(differences)}); "
                f"resume with the same config, or pass a new --out directory"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    # Every process of a multi-process run writes it: through a file of its own, so none reads half a file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(yaml.safe_dump(plain(current), sort_keys=False))
    temporary.replace(path)


def model_differences(trained: WorldModelConfig, wanted: WorldModelConfig) -> list[str]:
    """The MODEL_SECTIONS in which two configs differ: where weights of one do not fit the other."""
    trained_dict, wanted_dict = plain(trained.to_dict()), plain(wanted.to_dict())
    return [key for key in MODEL_SECTIONS if trained_dict[key] != wanted_dict[key]]


def plain(value):
    """Tuples to lists, so a config compares equal to its YAML round trip."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value
