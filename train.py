"""Trains the world model from a recorded HDF5 file, stage by stage: the autoencoder (vae), the
denoiser (dit) and the reward/end heads (heads), or all three in order. Killed at any point, it resumes.
The distill stage teaches a copy of a trained checkpoint to play in one denoiser pass a frame.

    python train.py --config configs/pacman-64.yaml --data data/pacman.h5 --out runs/pacman-64
    python train.py --config configs/pacman-64.yaml --data data/pacman.h5 --out runs/pacman-64-one-step \
        --stage distill --init-from runs/pacman-64/checkpoint
    accelerate launch --multi_gpu --num_processes 2 train.py ...   # two processes: GPUs, or CPUs with no GPU
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

STAGES = ("vae", "dit", "heads")  # in training order; worldmodel.training.STAGE_TRAINERS trains each
# Not part of "all": a one-pass denoiser learnt from a trained checkpoint, given as --init-from.
DISTILL = "distill"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/pacman-64.yaml", help="YAML preset in configs/")
    parser.add_argument("--data", required=True, help="recorded HDF5 file (python -m recorder ...)")
    parser.add_argument("--out", required=True, help="run directory: state, logs, samples, checkpoint/")
    parser.add_argument(
        "--stage",
        default="all",
        choices=(*STAGES, "all", DISTILL),
        help="which stage to train; distill: a one-pass sampler taught by the --init-from checkpoint",
    )
    parser.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        help="start a new run from this checkpoint's weights (same model config, except that it may add "
        "dit.action_planes and change dit.wrap_edges); ignored once the run has its own checkpoint",
    )
    parser.add_argument("overrides", nargs="*", help="config overrides such as train.dit.steps=200")
    return parser.parse_args(argv)


if __name__ == "__main__":
    parse_args()  # --help and argument errors answer at once, before torch and diffusers load (seconds)

import recorder
from worldmodel.checkpoint import CheckpointError
from worldmodel.config import ConfigError, load_config
from worldmodel.training import RunMismatchError, RunSetupError, TrainingRun, TrainingStateError

# What a user can fix: each is printed as one line naming the file, the problem and the fix.
USER_ERRORS = (
    ConfigError,
    RunMismatchError,
    RunSetupError,
    CheckpointError,
    TrainingStateError,
    recorder.TrajectoryFormatError,
)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        run = TrainingRun(load_config(args.config, args.overrides), Path(args.data), Path(args.out))
        run.start_processes()
        if run.accelerator.is_main_process:
            print(f"train.py: {run.processes_line()}")
        run.load_model(args.init_from)
        if args.stage == DISTILL:
            run.load_teacher(args.init_from)
        for name in STAGES if args.stage == "all" else (args.stage,):
            try:
                run.train(name)
            except KeyboardInterrupt:
                print(
                    f"train.py: interrupted; the {name} stage's last save in {run.state_dir(name)} is kept: "
                    "run the same command to go on from it",
                    file=sys.stderr,
                )
                return 130
        run.finish()
    except USER_ERRORS as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
