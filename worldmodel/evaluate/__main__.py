"""Command line: evaluate a checkpoint on held-out episodes and write a report.
Example: python -m worldmodel.evaluate --checkpoint checkpoints/pacman-64 --data data/held_out.h5 --out reports/pacman-64"""

from __future__ import annotations

import argparse
import shlex
import sys

import torch

from recorder import TrajectoryFormatError
from worldmodel.checkpoint import CheckpointError
from worldmodel.dream import AgentFileError
from worldmodel.evaluate.episodes import EvaluationError
from worldmodel.evaluate.run import evaluate
from worldmodel.onnx_runtime import RUNTIMES, OnnxRuntimeError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m worldmodel.evaluate", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--checkpoint", required=True, help="checkpoint directory (e.g. checkpoints/pacman-64)"
    )
    parser.add_argument(
        "--data", required=True, help="held-out trajectory file, recorded with other seeds than training"
    )
    parser.add_argument("--out", required=True, help="report directory, e.g. reports/pacman-64/")
    parser.add_argument(
        "--episodes", type=int, default=None, help="held-out episodes to use (default 8, quick 3)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice and sample")
    parser.add_argument(
        "--quick", action="store_true", help="a small run for smoke tests and CPUs (200-step drift)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (1 when another job shares the CPU)"
    )
    parser.add_argument("--device", default="cpu", help="torch device to run the model on, e.g. cuda")
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="torch",
        help="onnx: the denoiser and decoder run in ONNX Runtime (CPU; faster, see bench/results/one_step.md)",
    )
    parser.add_argument(
        "--agent",
        default=None,
        help="a PPO agent's directory from python -m worldmodel.dream (e.g. reports/dream/agents/dream): "
        "its keys become one more action family",
    )
    args = parser.parse_args(argv)
    if args.episodes is not None and args.episodes < 1:
        parser.error("--episodes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    arguments = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "-m", "worldmodel.evaluate", *arguments])
    try:
        metrics = evaluate(
            args.checkpoint, args.data, args.out, args.episodes, args.seed, args.quick, command,
            device=args.device, runtime=args.runtime, agent=args.agent,
        )  # fmt: skip
    except (
        CheckpointError, TrajectoryFormatError, EvaluationError, OnnxRuntimeError, AgentFileError
    ) as error:  # fmt: skip
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.out}: teacher-forced PSNR {metrics['psnr_teacher_forced']:.2f} dB "
        f"(copy last {metrics['psnr_copy_last']:.2f}), step {metrics['step_fps']:.1f} fps"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
