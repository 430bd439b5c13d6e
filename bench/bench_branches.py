"""What each key would have done: every recorded step of a recording replayed in the real game and
branched under all five keys (a copy of the game per key). Counts how many keys give a different
next frame, how often a key gives the NOOP frame (a key into a wall, or the way Pacman already
goes), and how fast branching runs: what training on the real answer to every key would cost.

    python bench/bench_branches.py --data data/pacman-mix.h5 --episodes 100
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

import envs  # noqa: E402
import recorder  # noqa: E402


def branch_counts(data: str, episodes: int) -> dict:
    game = envs.make_env("Pacman-v0")
    actions_count = game.action_space.n
    counts = {"steps": 0, "distinct": 0, "keys": 0, "noop_frame": 0, "replayed": 0}
    started = time.perf_counter()
    with recorder.load(data) as trajectories:
        for i in range(min(episodes, len(trajectories))):
            episode = trajectories.episode(i)
            game.reset(seed=int(episode.seed))
            for t, action in enumerate(episode.actions):
                outcomes = [copy.deepcopy(game).step(key)[0] for key in range(actions_count)]
                frame = game.step(int(action))[0]
                counts["replayed"] += np.array_equal(frame, episode.frames[t + 1]) and np.array_equal(
                    frame, outcomes[int(action)]
                )
                counts["steps"] += 1
                counts["distinct"] += len({o.tobytes() for o in outcomes})
                counts["keys"] += actions_count - 1
                counts["noop_frame"] += sum(np.array_equal(o, outcomes[0]) for o in outcomes[1:])
    counts["branch_steps_per_s"] = counts["steps"] * actions_count / (time.perf_counter() - started)
    counts["actions"] = actions_count
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/pacman-mix.h5", help="a recording of Pacman-v0")
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()
    c = branch_counts(args.data, args.episodes)
    print(
        f"{c['steps']} steps of {args.data}: the branch under the recorded key equals the recording at "
        f"{c['replayed']}; distinct next frames per step {c['distinct'] / c['steps']:.2f} of {c['actions']}; keys giving "
        f"the NOOP frame {c['noop_frame'] / c['keys']:.3f}; {c['branch_steps_per_s']:.0f} branched steps/s"
    )


if __name__ == "__main__":
    main()
