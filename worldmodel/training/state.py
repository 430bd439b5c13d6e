"""A training stage's resumable state: saved so that a kill at any moment leaves the last save
usable, and read back without running anything a file holds (no unpickling of objects)."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import accelerate.utils
import safetensors
import safetensors.torch


def save_training_state(accelerator, state_dir: Path, progress: dict, ema) -> None:
    """Saves optimiser, weights, EMA and RNG states; a kill at any moment leaves the previous save usable.

    Every process calls it: the main process writes the weights, optimiser and EMA once, and each
    process its own random state (``random_states_<i>.pkl``), so that a resumed run draws what it would have.
    """
    fresh, previous = (
        state_dir.with_name(state_dir.name + ".new"),
        state_dir.with_name(state_dir.name + ".old"),
    )
    if accelerator.is_main_process:
        shutil.rmtree(fresh, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(fresh))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
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
