"""The pieces of train.py that are not the loop itself: the run directory's config guard, the model a
run starts from, the learning-rate schedule, and the processes training runs on. The resumable state
is in worldmodel/training_state.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, gather_object

from recorder.locking import exclusive_lock
from worldmodel.config import ConfigError, WorldModelConfig, config_from_dict, load_config
from worldmodel.dit import Denoiser, with_more_inputs
from worldmodel.model import WorldModel

# Sections whose change makes earlier weights meaningless; the train/flow sampling settings may change freely.
MODEL_SECTIONS = ("env_id", "frame_size", "history_length", "vae", "dit", "heads")


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


def initial_model(path: str, config, action_meanings: list[str]) -> WorldModel:
    """A trained checkpoint to continue from under ``config``, its denoiser widened for action planes
    when the config adds them and padded as the config's ``dit.wrap_edges`` says."""
    model = WorldModel.load(path)
    trained = config_from_dict(model.settings.config)
    # The differences the trained weights can take: planes the denoiser lacks, added by widening it,
    # and the convolutions' padding, which is no weight.
    trained.dit.action_planes = config.dit.action_planes or model.denoiser.action_planes
    trained.dit.wrap_edges = config.dit.wrap_edges
    differences = model_differences(trained, config)
    if differences or model.settings.action_meanings != action_meanings:
        raise ConfigError(
            f"--init-from {path} was trained with another model config (different: "
            f"{', '.join(differences) or 'actions'}); only dit.action_planes may be added and "
            "dit.wrap_edges changed"
        )
    # The new run's stage records replace the source's; keep those, and what the source itself was
    # initialised from, as the weights' history.
    source = model.settings.training
    model.settings.training["initialised_from"] = {
        "checkpoint": str(path),
        "stages": dict(source.get("stages", {})),
        **({"initialised_from": source["initialised_from"]} if "initialised_from" in source else {}),
    }
    transformer = model.denoiser.transformer
    if config.dit.action_planes and not model.denoiser.action_planes:
        transformer = with_more_inputs(transformer, model.settings.num_actions)
    model.denoiser = Denoiser(transformer, model.denoiser.conditioner, config.dit.wrap_edges)
    return model


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


def make_accelerator(mixed_precision: str, run_dir: Path) -> Accelerator:
    """The accelerator of this process, on as many processes as the launcher started.

    ``accelerate launch --multi_gpu`` and ``torchrun`` start the processes and set WORLD_SIZE; on a
    machine with no GPU, accelerate joins them over gloo only when told to use the CPU, and otherwise
    lets each process train alone on the same files.
    """
    cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    return Accelerator(
        cpu=cpu,
        mixed_precision=mixed_precision,
        log_with="tensorboard",
        project_dir=str(run_dir),
        gradient_accumulation_steps=1,
    )


def launch_problem(accelerator: Accelerator) -> str | None:
    """Why this run would train on fewer processes than were asked for, or None."""
    started = int(os.environ.get("WORLD_SIZE", "1"))
    if started > accelerator.num_processes:
        return (
            f"{started} processes were started but accelerate set up {accelerator.num_processes} "
            f"({accelerator.distributed_type}); launch with `accelerate launch --multi_gpu "
            f"--num_processes {started} train.py ...`"
        )
    # accelerate's plain launcher, taken for --cpu or when it finds no GPUs, starts one process
    # whatever --num_processes says; it sets MASTER_ADDR only when asked for more than one.
    plain_launcher = "ACCELERATE_USE_CPU" in os.environ and "MASTER_ADDR" in os.environ
    if accelerator.num_processes == 1 and started == 1 and plain_launcher:
        return (
            "`accelerate launch` was asked for several processes but started one: with --cpu, or "
            "with no GPU, it starts several only through MPI (--mpirun_hostfile). To train on N "
            "processes run `accelerate launch --multi_gpu --num_processes N train.py ...` (with no "
            "GPU they train on the CPU); for one process, drop --num_processes"
        )
    return None


def keep_gradient_layout(module: torch.nn.Module) -> None:
    """Makes each parameter's gradient arrive in the parameter's own memory layout.

    DDP averages gradients in buckets laid out like the parameters and warns ("Grad strides do not
    match bucket view strides") when one arrives otherwise: Sana's Mix-FFN feeds its depthwise
    convolution a channels-last view of the tokens, so that weight's gradient comes back
    channels-last (strides that differ only on its size-1 axis). The copy is exact and made only
    where the layouts differ, so the numbers are the same.
    """
    for parameter in module.parameters():
        if parameter.requires_grad:
            parameter.register_hook(lambda grad, parameter=parameter: in_layout_of(parameter, grad))


def in_layout_of(parameter: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    if grad.stride() == parameter.stride():
        return grad
    in_layout = torch.empty_strided(grad.shape, parameter.stride(), dtype=grad.dtype, device=grad.device)
    return in_layout.copy_(grad)


def on_every_process(accelerator: Accelerator, decision: bool) -> bool:
    """The main process's ``decision``, on every process: for what all of them must decide alike."""
    if accelerator.num_processes == 1:
        return decision
    return bool(broadcast_object_list([decision], from_process=0)[0])


def record_first_windows(accelerator: Accelerator, path: Path, windows: np.ndarray) -> None:
    """Writes which (episode, frame) windows each process trained on at its first step to ``path``:
    how a multi-process run shows that its processes split the data."""
    per_process = gather_object([np.asarray(windows).tolist()])
    if accelerator.is_main_process:
        record = {"processes": accelerator.num_processes, "windows": per_process}
        path.write_text(json.dumps(record))
