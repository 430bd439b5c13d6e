"""Command line: record episodes of a game into a trajectory file (appending if it exists).
Example: python -m recorder --env Pacman-v0 --episodes 100 --out data/pacman.h5 --workers 2"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

from tqdm import tqdm

from recorder.format import TrajectoryFormatError
from recorder.policies import PolicyError, make_policy
from recorder.record import (
    RecordingError,
    StopRequest,
    action_meanings,
    make_recording_env,
    record_episodes,
    seeds_to_record,
)
from recorder.writer import TrajectoryWriter


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m recorder", description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="Gymnasium env id, e.g. Pacman-v0 or ALE/MsPacman-v5")
    parser.add_argument("--episodes", type=int, required=True, help="number of episodes to record")
    parser.add_argument("--out", required=True, help="trajectory file; appended to if it exists")
    parser.add_argument(
        "--policy",
        default="explore",
        help="explore (default), random, sticky, humanlike, human (keyboard), module:callable, "
        "or a mixture drawn per episode and switched inside it: mix:explore=0.4,humanlike=0.3,sticky=0.2,random=0.1",
    )
    parser.add_argument("--workers", type=int, default=1, help="env copies playing in parallel processes")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="record the first --episodes seeds from S up that the file does not hold yet "
        "(so an append never repeats a seed and fills the gaps a killed parallel run left)",
    )
    parser.add_argument("--max-steps", type=int, default=None, help="truncate episodes after this many steps")
    parser.add_argument("--frame-size", type=int, default=64, help="square frame size the env renders at")
    parser.add_argument("--log-episodes", action="store_true", help="print a line per committed episode")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.workers < 1 or (args.max_steps is not None and args.max_steps < 1):
        parser.error("--episodes, --workers and --max-steps must be positive")
    if args.policy == "human" and args.workers > 1:
        parser.error("--policy human plays in one process; drop --workers")
    return args


def record(args: argparse.Namespace) -> int:
    env = make_recording_env(args.env, args.frame_size)
    policy = None
    try:
        policy = make_policy(args.policy, env, seed=args.seed, env_id=args.env)
        frame_size = env.observation_space.shape[:2]
        fps = float(env.metadata.get("render_fps") or 30)
        with TrajectoryWriter(args.out, args.env, action_meanings(env), frame_size, fps) as writer:
            seeds = seeds_to_record(writer.seeds, args.seed, args.episodes)
            committed, frames, started = 0, 0, time.perf_counter()
            bar = tqdm(total=args.episodes, unit="ep", desc=f"recording {args.env}", file=sys.stderr)
            stop = StopRequest()
            play = (env, policy, args.env, args.policy, seeds, args.max_steps, args.workers, args.frame_size)
            # closing(): the workers stop and are joined before the file closes, whatever ends the loop.
            with bar, stop, contextlib.closing(record_episodes(*play, stop)) as episodes:
                for episode in episodes:
                    writer.add_episode(**episode)
                    committed += 1
                    frames += len(episode["frames"])
                    if args.log_episodes:
                        tqdm.write(
                            f"committed episode {writer.num_episodes - 1} seed {episode['seed']}",
                            file=sys.stdout,
                        )
                        sys.stdout.flush()
                    bar.set_postfix(frames_per_s=f"{frames / (time.perf_counter() - started):.0f}")
                    bar.update(1)
                    if stop():
                        break
            if stop():
                print(f"interrupted: kept {writer.num_episodes} episodes in {args.out}", file=sys.stderr)
                return 130
            print(
                f"recorded {committed} episodes ({frames} frames); {args.out} holds {writer.num_episodes}",
                file=sys.stderr,
            )
    finally:
        if hasattr(policy, "close"):
            policy.close()
        env.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return record(args)
    except (TrajectoryFormatError, PolicyError, RecordingError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C: the writer's commit protocol keeps what was committed
        print(f"interrupted: {args.out} keeps every episode committed so far", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
