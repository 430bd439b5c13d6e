"""The processes a run trains on: the accelerator of this process, a launch that started fewer than
were asked for, gradients laid out for DDP, decisions every process takes alike, and the windows each drew."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, gather_object


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
