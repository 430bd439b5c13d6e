"""The pieces of train.py that are not the loop itself: resumable state kept safe from kills,
the run directory's config guard, and the learning-rate schedule."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
import yaml

from worldmodel.config import WorldModelConfig, load_config

# Sections whose change makes earlier weights meaningless; the train/flow sampling settings may change freely.
MODEL_SECTIONS = ("env_id", "frame_size", "history_length", "vae", "dit", "heads")


class RunMismatchError(ValueError):
    """An output directory that holds a run of another config."""


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
    path.write_text(yaml.safe_dump(plain(current), sort_keys=False))


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


def learning_rate_factor(step: int, warmup_steps: int, total_steps: int, decay_steps: int) -> float:
    """Linear warmup, then constant, then (when decay_steps > 0) a linear fall to zero at total_steps."""
    warmup = min(1.0, (step + 1) / max(1, warmup_steps))
    if decay_steps <= 0:
        return warmup
    return warmup * min(1.0, max(0.0, (total_steps - step) / decay_steps))


def learning_rate_schedule(optimizer: torch.optim.Optimizer, stage) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: learning_rate_factor(step, stage.warmup_steps, stage.steps, stage.decay_steps),
    )


def save_training_state(accelerator, state_dir: Path, progress: dict) -> None:
    """Saves optimiser, weights, EMA and RNG states; a kill at any moment leaves the previous save usable."""
    if not accelerator.is_main_process:
        accelerator.wait_for_everyone()
        return
    fresh, previous = (
        state_dir.with_name(state_dir.name + ".new"),
        state_dir.with_name(state_dir.name + ".old"),
    )
    shutil.rmtree(fresh, ignore_errors=True)
    accelerator.save_state(str(fresh))
    (fresh / "progress.json").write_text(json.dumps(progress))
    if state_dir.exists():
        shutil.rmtree(previous, ignore_errors=True)
        state_dir.rename(previous)
    fresh.rename(state_dir)
    shutil.rmtree(previous, ignore_errors=True)
    accelerator.wait_for_everyone()


def load_training_state(accelerator, state_dir: Path) -> dict | None:
    """Restores the last complete save, if any; returns its progress record (step, elapsed seconds)."""
    previous = state_dir.with_name(state_dir.name + ".old")
    for candidate in (state_dir, previous):  # .old survives only when a kill hit between two renames
        if (candidate / "progress.json").is_file():
            accelerator.load_state(str(candidate))
            return json.loads((candidate / "progress.json").read_text())
    return None
