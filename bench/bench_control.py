"""Control only: Pacman on the real tile after 16 free-running steps, per action family, for one or more
checkpoints, from the same held-out starts and keys as the evaluation's family table (its seeds). A
quick way to compare training recipes: minutes per family, where the full evaluation takes an hour.

    python bench/bench_control.py --checkpoint checkpoints/pacman-64 runs/x/checkpoint --out bench/results/x.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

import envs  # noqa: E402
from bench.results_file import cpu_name, write_results  # noqa: E402
from worldmodel import load  # noqa: E402
from worldmodel.evaluate import families as fam  # noqa: E402
from worldmodel.evaluate.episodes import choose_contexts, load_held_out  # noqa: E402
from worldmodel.evaluate.names import (  # noqa: E402
    FIRST_MISSES,
    GHOST_COUNT,
    MISSING_AT_16,
    TILE_AT_16,
    TILE_AT_16_INTERVAL,
)
from worldmodel.evaluate.report import first_miss_table  # noqa: E402
from worldmodel.evaluate.run import Plan  # noqa: E402

ONE_STEP = "one_step_miss_by_move"


def control(
    checkpoint: str, data: str, episodes: int, families: list[str], seed: int, one_step: bool, sampling: dict
) -> dict[str, dict]:
    """The family table's control columns for ``checkpoint``, family by family; with ``one_step``,
    also every step predicted from the real frames, by move (under ONE_STEP). ``sampling`` changes
    the checkpoint's sampler settings (None keeps one)."""
    model = load(checkpoint)
    sampler = model.sampler.replace(**sampling)
    held_out = load_held_out(model, data, episodes)
    starts = choose_contexts(
        held_out, model.settings.history_length, fam.TARGET_STEP, np.random.default_rng([seed, 16]),
        Plan().family_starts_per_episode,
    )  # fmt: skip
    game = envs.make_env(model.settings.env_id, frame_size=model.settings.frame_size)
    scores = {}
    for family in families:
        started = time.perf_counter()
        play = fam.usable(fam.play_family(game, family, starts, fam.TARGET_STEP, seed, None))
        scores[family] = fam.control_scores(fam.generate(model, play, seed, sampler=sampler))
        if one_step:
            scores[family][ONE_STEP] = fam.one_step_misses_by_move(model, play, seed, sampler)
        print(
            f"{checkpoint} {family}: {scores[family][TILE_AT_16]:.3f} ({time.perf_counter() - started:.0f} s)"
        )
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", nargs="+", required=True, help="checkpoint directories")
    parser.add_argument("--data", default="data/pacman-mix-held-out.h5", help="held-out recording")
    parser.add_argument("--episodes", type=int, default=40, help="held-out episodes (12 starts each)")
    parser.add_argument(
        "--families", nargs="+", default=["random", "humanlike", "sticky"], choices=fam.FAMILIES
    )
    parser.add_argument("--seed", type=int, default=0, help="the evaluation's seed (its default 0)")
    parser.add_argument(
        "--one-step", action="store_true",
        help="also predict every step from the real frames and count misses by move (as long again)",
    )  # fmt: skip
    parser.add_argument("--guidance-scale", type=float, help="instead of the checkpoint's")
    parser.add_argument("--sampling-steps", type=int, help="instead of the checkpoint's")
    parser.add_argument("--out", default="bench/results/control.md")
    args = parser.parse_args()
    torch.set_num_threads(1)  # steady on a shared CPU
    scores = {
        checkpoint: control(
            checkpoint,
            args.data,
            args.episodes,
            args.families,
            args.seed,
            args.one_step,
            {"guidance_scale": args.guidance_scale, "sampling_steps": args.sampling_steps},
        )
        for checkpoint in args.checkpoint
    }
    rows = []
    for checkpoint, by_family in scores.items():
        for family, score in by_family.items():
            low, high = score[TILE_AT_16_INTERVAL]
            rows.append(
                f"| `{checkpoint}` | {family} | {score[TILE_AT_16]:.3f} ({low:.2f}-{high:.2f}) | "
                f"{score['rollouts_at_16']} | {score[MISSING_AT_16]:.3f} | {score[GHOST_COUNT]:.3f} |"
            )
    options = (
        (f" --guidance-scale {args.guidance_scale}" if args.guidance_scale is not None else "")
        + (f" --sampling-steps {args.sampling_steps}" if args.sampling_steps is not None else "")
        + (" --one-step" if args.one_step else "")
    )
    lines = [
        "# Control: Pacman on the real tile after 16 free-running steps",
        "",
        f"`python bench/bench_control.py --checkpoint {' '.join(args.checkpoint)} --data {args.data} "
        f"--episodes {args.episodes} --families {' '.join(args.families)}{options}`",
        "",
        f"The evaluation's family rollouts (seed {args.seed}), one torch thread, CPU: {cpu_name()}.",
        "",
        "| checkpoint | play | Pacman on the real tile at 16 (95% interval) | rollouts | missing at 16 "
        "| ghost count right |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    for checkpoint, by_family in scores.items():
        lines += [
            f"Where `{checkpoint}`'s rollouts first lose Pacman, by the real move at that step "
            "(first misses / steps on the real tile until then):",
            "",
            first_miss_table({family: score[FIRST_MISSES] for family, score in by_family.items()}),
            "",
        ]
        if args.one_step:
            lines += [
                f"`{checkpoint}` predicting each of those steps from the real frames before it (misses / "
                "steps): a high share here is a move it cannot make; a low one beside a high free-running "
                "hazard, a move it fails only once its own frames have drifted.",
                "",
                first_miss_table({family: score[ONE_STEP] for family, score in by_family.items()}),
                "",
            ]

    def draw(axis):
        width = 0.8 / len(scores)
        for i, (checkpoint, by_family) in enumerate(scores.items()):
            x = np.arange(len(args.families)) + i * width
            shares = [by_family[f][TILE_AT_16] for f in args.families]
            errors = np.array([[s - by_family[f][TILE_AT_16_INTERVAL][0], by_family[f][TILE_AT_16_INTERVAL][1] - s]
                               for s, f in zip(shares, args.families, strict=True)]).T  # fmt: skip
            axis.bar(x, shares, width, yerr=errors, label=checkpoint)
        axis.set_xticks(np.arange(len(args.families)) + 0.4 - width / 2, args.families)
        axis.set_ylabel("Pacman on the real tile at step 16")
        axis.set_ylim(0, 1)
        axis.legend(fontsize=8)

    write_results(Path(args.out), lines, draw)


if __name__ == "__main__":
    main()
