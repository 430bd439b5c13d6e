"""The reward and episode-end heads on every transition of a recording, for one or more checkpoints:
precision and recall of pellets and ends (the evaluation's measure, on more episodes than its 40, as
deaths are one per episode), and which rewards the false ends carry. Writes bench/results/heads.md.

    python bench/bench_heads.py --data data/pacman-mix-validation.h5 --checkpoint checkpoints/pacman-64
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

import recorder  # noqa: E402
from bench.results_file import cpu_name, write_results  # noqa: E402
from worldmodel import load  # noqa: E402
from worldmodel.evaluate.reward_end import reward_end_scores  # noqa: E402
from worldmodel.vae import encode_frames  # noqa: E402


@torch.no_grad()
def transitions(model, data: Path) -> dict:
    """Every transition of ``data`` as the model's latents before and after, with its key, reward and end."""
    parts = {name: [] for name in ("previous", "following", "actions", "rewards", "terminated")}
    with recorder.load(data) as trajectories:
        for index in tqdm(range(len(trajectories)), desc=f"encoding {data.name}", unit="ep"):
            episode = trajectories.episode(index)
            latents = encode_frames(model.vae, torch.from_numpy(episode.frames))
            parts["previous"].append(latents[:-1])
            parts["following"].append(latents[1:])
            parts["actions"].append(torch.from_numpy(episode.actions).long())
            parts["rewards"].append(episode.rewards)
            parts["terminated"].append(episode.terminated)
    return {
        name: torch.cat(items) if isinstance(items[0], torch.Tensor) else np.concatenate(items)
        for name, items in parts.items()
    }


@torch.no_grad()
def false_ends_by_reward(model, steps: dict) -> dict[float, int]:
    """How many steps the end head calls an end that the game did not end, by the reward they paid."""
    _, end_logit = model.heads(steps["previous"], steps["following"], steps["actions"])
    called = torch.sigmoid(end_logit).numpy() > model.end_threshold
    false = called & ~steps["terminated"].astype(bool)
    rewards = steps["rewards"][false]
    return {float(value): int((rewards == value).sum()) for value in np.unique(rewards)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="recorded file, with seeds training never used")
    parser.add_argument("--checkpoint", nargs="+", required=True, help="checkpoint directories")
    parser.add_argument("--out", default="bench/results/heads.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows, scores = [], {}
    for checkpoint in args.checkpoint:
        model = load(checkpoint)
        steps = transitions(model, Path(args.data))
        score = reward_end_scores(
            model.heads, steps["previous"], steps["following"], steps["actions"],
            steps["rewards"], steps["terminated"], model.end_threshold,
        )  # fmt: skip
        scores[checkpoint] = score
        false_ends = ", ".join(f"{n} paid {v:g}" for v, n in false_ends_by_reward(model, steps).items())
        rows.append(
            f"| `{checkpoint}` | {score['end_precision']:.3f} / {score['end_recall']:.3f} | "
            f"{score['end_events']} / {score['end_predicted']} | {false_ends or 'none'} | "
            f"{score['reward_precision']:.3f} / {score['reward_recall']:.3f} | {score['reward_exact']:.4f} | "
            f"{score['end_threshold']:.2f} |"
        )
    lines = [
        "# Reward and end heads on a held-out recording",
        "",
        f"`python bench/bench_heads.py --data {args.data} --checkpoint {' '.join(args.checkpoint)}`",
        "",
        f"Every transition of `{args.data}` ({score['transitions']:,} steps), both latents encoded from "
        f"the recorded frames, so this scores the heads alone. CPU: {cpu_name()}.",
        "",
        "| checkpoint | end precision / recall | ends real / called | false ends by the reward of the step "
        "| pellet precision / recall | reward exact | end threshold |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]

    def draw(axis):
        names = list(scores)
        x = np.arange(len(names))
        axis.bar(x - 0.2, [scores[n]["end_precision"] for n in names], 0.4, label="end precision")
        axis.bar(x + 0.2, [scores[n]["end_recall"] for n in names], 0.4, label="end recall")
        axis.axhline(0.9, color="gray", linestyle="--", label="target 0.9")
        axis.set_xticks(x, names)
        axis.set_ylim(0.5, 1.0)
        axis.legend()
        axis.set_title(f"end head on {Path(args.data).name}")

    write_results(Path(args.out), lines, draw)


if __name__ == "__main__":
    main()
