"""What each player's recordings hold: how often the moments a world model must learn appear
(stops against walls, idles, reversals, turns still waiting after more than 4 steps, power pellets,
eaten ghosts, deaths, cleared mazes), per player and for a given training file.
Writes bench/results/events.md."""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

import recorder  # noqa: E402
from envs.events import EVENTS, recording_events  # noqa: E402
from recorder.__main__ import main as record  # noqa: E402

PLAYERS = (
    "explore",
    "random",
    "sticky",
    "humanlike",
    "mix:explore=0.3,humanlike=0.35,sticky=0.2,random=0.15",
)


def row(name: str, path: Path) -> list[str]:
    with recorder.load(path) as trajectories:
        counts = recording_events(trajectories)
        episodes = len(trajectories)
    steps = counts["steps"]
    cells = [name, str(episodes), f"{steps:,}", f"{steps / episodes:.0f}"]
    for event in EVENTS[1:]:
        cells.append(f"{counts[event]:,} ({1000 * counts[event] / steps:.1f})")
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200, help="episodes recorded per player")
    parser.add_argument(
        "--data", nargs="*", default=[], help="recorded files to count as well (e.g. the training file)"
    )
    parser.add_argument("--out", default="bench/results/events.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for player in PLAYERS:
            path = Path(directory) / "events.h5"
            path.unlink(missing_ok=True)
            arguments = ["--env", "Pacman-v0", "--episodes", str(args.episodes), "--out", str(path)]
            if record([*arguments, "--policy", player, "--seed", "100000"]) != 0:
                raise SystemExit(f"recording with {player} failed")
            rows.append(row(f"`{player}`", path))
    rows += [row(f"`{path}`", Path(path)) for path in args.data]
    header = ["recording", "episodes", "steps", "steps/episode", *EVENTS[1:]]
    lines = [
        "# Events in recordings",
        "",
        f"Counts (and per 1,000 steps) of each event, each episode replayed in the real game "
        f"(`envs/events.py`); {args.episodes} episodes per player from seed 100,000. "
        f"Python {platform.python_version()}, {platform.machine()}.",
        "",
        f"`python bench/bench_events.py --episodes {args.episodes}"
        + (f" --data {' '.join(args.data)}" if args.data else "")
        + "`",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cells) + " |" for cells in rows),
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
