"""The pieces of train.py that are not the loop itself: resumable state kept safe from kills and
read without running code, the run directory's config guard, and the learning-rate schedule."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import accelerate.utils
import safetensors
import safetensors.torch
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


def save_training_state(accelerator, state_dir: Path, progress: dict, ema) -> None:
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
    write_ema_state(ema.state_dict(), fresh / EMA_FILE)
    (fresh / "progress.json").write_text(json.dumps(progress))
    if state_dir.exists():
        shutil.rmtree(previous, ignore_errors=True)
        state_dir.rename(previous)
    fresh.rename(state_dir)
    shutil.rmtree(previous, ignore_errors=True)
    accelerator.wait_for_everyone()


def load_training_state(accelerator, state_dir: Path, ema) -> dict | None:
    """Restores the last complete save, if any; returns its progress record (step, elapsed seconds).

    Raises TrainingStateError, having run nothing from it, for a state with a file that holds more than
    tensors and numbers, or that is damaged or missing."""
    previous = state_dir.with_name(state_dir.name + ".old")
    for candidate in (state_dir, previous):  # .old survives only when a kill hit between two renames
        if (candidate / "progress.json").is_file():
            check_state_files(candidate, state_dir)
            if accelerator.is_main_process:
                convert_legacy_ema(candidate)
            accelerator.wait_for_everyone()
            try:
                accelerator.load_state(str(candidate))
            except (safetensors.SafetensorError, RuntimeError, OSError, ValueError, KeyError) as error:
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
                raise state_error(candidate, state_dir, f"does not load ({reason})") from None
            ema.load_state_dict(read_ema_state(candidate / EMA_FILE, state_dir))
            return json.loads((candidate / "progress.json").read_text())
    return None


# ---- loading nothing that can run code ------------------------------------------------------------------
# accelerate pickles optimiser, schedule and RNG states (torch.save) and reads them weights-only, which
# refuses anything but tensors, numbers and containers. Objects registered with register_for_checkpointing
# it would unpickle in full, so the EMA is kept here instead, as safetensors with JSON counters.
EMA_FILE = "ema.safetensors"
LEGACY_EMA_FILE = "custom_checkpoint_0.pkl"  # the EMA as accelerate saved it before EMA_FILE existed
PICKLED_SUFFIXES = (".bin", ".pkl", ".pt")


class TrainingStateError(RuntimeError):
    """A saved training state that cannot be resumed safely."""


def state_error(path: Path, state_dir: Path, problem: str) -> TrainingStateError:
    return TrainingStateError(
        f"{path} {problem}; it was not loaded and nothing in it ran. Delete {state_dir} to train this "
        "stage from its start, or put back the state train.py wrote"
    )


def check_state_files(state: Path, state_dir: Path) -> None:
    """Reads every pickled file of ``state`` weights-only first: the RNG states' load in accelerate
    drops its errors silently, and this names the file at fault."""
    for path in sorted(state.iterdir()):
        if path.suffix not in PICKLED_SUFFIXES:
            continue
        try:
            accelerate.utils.load(path, map_location="cpu")  # weights_only=True
        except pickle.UnpicklingError:
            raise state_error(
                path,
                state_dir,
                "holds Python objects besides tensors and numbers (which could run code) or is damaged",
            ) from None
        except Exception as error:  # a damaged file: whatever torch raises, the fix is the same
            raise state_error(path, state_dir, f"is damaged ({type(error).__name__})") from None


def convert_legacy_ema(state: Path) -> None:
    """Rewrites the pickled EMA of a state saved by an earlier train.py as EMA_FILE, read weights-only
    (check_state_files vetted it), so that accelerate, which would unpickle it in full, never sees it."""
    legacy = state / LEGACY_EMA_FILE
    if legacy.is_file():
        try:
            write_ema_state(accelerate.utils.load(legacy, map_location="cpu"), state / EMA_FILE)
        except (KeyError, TypeError, AttributeError) as error:
            raise state_error(legacy, state, f"is not an EMA state ({type(error).__name__})") from None
        legacy.unlink()  # killed before this, the next resume converts it again


def write_ema_state(ema_state: dict, path: Path) -> None:
    """An ``EMAModel.state_dict()`` as safetensors: shadow weights as tensors, counters as JSON."""
    counters = {key: value for key, value in ema_state.items() if key != "shadow_params"}
    shadow = {
        f"shadow_params.{i}": p.detach().cpu().contiguous() for i, p in enumerate(ema_state["shadow_params"])
    }
    temporary = path.with_name(path.name + ".tmp")
    safetensors.torch.save_file(shadow, temporary, metadata={"counters": json.dumps(counters)})
    temporary.replace(path)


def read_ema_state(path: Path, state_dir: Path) -> dict:
    if not path.is_file():
        raise state_error(path.parent, state_dir, f"has no {EMA_FILE}: it is incomplete")
    try:
        with safetensors.safe_open(path, "pt") as stored:
            counters = json.loads(stored.metadata()["counters"])
            shadow = [stored.get_tensor(f"shadow_params.{i}") for i in range(len(stored.keys()))]
    except (safetensors.SafetensorError, KeyError, TypeError, ValueError) as error:
        raise state_error(path, state_dir, f"is not an EMA state ({type(error).__name__})") from None
    return {**counters, "shadow_params": shadow}
