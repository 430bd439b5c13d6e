"""Checks a trajectory file episode by episode against its checksums and, with --repair OUT, copies
every intact episode into a new file. Example: python -m recorder.check data/pacman.h5 --repair fixed.h5"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from recorder.format import DamagedEpisodeError, TrajectoryFormatError
from recorder.reader import TrajectoryFile
from recorder.writer import TrajectoryWriter

OK, DAMAGED = 0, 1  # exit codes; 2 is a file that cannot be checked at all


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m recorder.check", description=__doc__.splitlines()[0])
    parser.add_argument("file", help="trajectory file written by `python -m recorder`")
    parser.add_argument("--repair", metavar="OUT", help="write every intact episode into this new file")
    parser.add_argument("--quiet", action="store_true", help="print only damaged episodes and the summary")
    return parser.parse_args(argv)


def check(path: Path, repair: Path | None, quiet: bool) -> int:
    if repair is not None and (repair.exists() or repair.is_symlink()):
        raise TrajectoryFormatError(
            f"{repair}: already exists; --repair writes a new file, choose another path"
        )
    with TrajectoryFile(path, on_damage="defer") as trajectories, contextlib.ExitStack() as stack:
        writer = None
        if repair is not None:
            writer = TrajectoryWriter(
                repair,
                trajectories.env_id,
                trajectories.action_meanings,
                trajectories.frame_size,
                trajectories.fps,
            )
            stack.enter_context(writer)
        if trajectories.missing_bytes:
            print(
                f"{path}: truncated, {trajectories.missing_bytes} bytes short; episodes past the cut are lost"
            )
        state = "ok" if trajectories.has_checksums else "readable (no checksums: written before format 2)"
        damaged, duplicates, first_row = [], [], {}
        for row in range(trajectories.num_rows):
            try:
                episode = trajectories.read_row(row)
            except DamagedEpisodeError as error:
                damaged.append(row)
                print(f"episode {row}: DAMAGED in {', '.join(error.datasets)}: {error.detail}")
                continue
            if episode.seed in first_row:
                duplicates.append(row)
                print(f"episode {row} seed {episode.seed}: duplicate of episode {first_row[episode.seed]}")
                continue
            first_row[episode.seed] = row
            if not quiet:
                print(f"episode {row} seed {episode.seed}: {state} ({len(episode.actions)} steps)")
            if writer is not None:
                writer.add_episode(**vars(episode))
        intact = trajectories.num_rows - len(damaged) - len(duplicates)
    summary = f"{path}: {trajectories.num_rows} episodes, {intact} intact, {len(damaged)} damaged"
    if duplicates:
        summary += f", {len(duplicates)} repeating a seed"
    if damaged:
        summary += f" (episodes {', '.join(map(str, damaged[:20]))}{' ...' if len(damaged) > 20 else ''})"
    print(summary)
    if repair is not None:
        print(f"wrote the {intact} intact episodes to {repair}")
    return DAMAGED if damaged or duplicates else OK


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    repair = Path(args.repair) if args.repair else None
    if repair is not None and os.path.realpath(repair) == os.path.realpath(args.file):
        print("error: --repair must name a new file, not the file being checked", file=sys.stderr)
        return 2
    try:
        return check(Path(args.file), repair, args.quiet)
    except TrajectoryFormatError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted" + (f": {repair} holds the episodes copied so far" if repair else ""),
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
