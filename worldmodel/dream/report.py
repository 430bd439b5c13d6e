"""The dream experiment's report: metrics.json, report.md, the learning curve and a GIF of the
dream-trained agent playing the real game."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from worldmodel.pictures import save_gif, upscale  # noqa: E402

AGENTS = (
    ("dream", "PPO trained in the learned game"),
    ("real", "PPO trained in the real game"),
    ("random", "random keys"),
)


def _cell(value) -> str:
    return (
        "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.1f}"
    )


CONTEXTS = {
    "real": "the real game's start",
    "agent": "the dream agent's own real-game play, refreshed as it learned",
}


def write(out: Path, metrics: dict, gif_frames: np.ndarray | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_curves(out / "learning_curve.png", metrics["curves"])
    if gif_frames is not None and len(gif_frames):
        save_gif(out / "dream_agent.gif", upscale(gif_frames), fps=10)
    rows = [
        f"| {name} | {_cell(metrics[kind]['mean_return'])} | {_cell(metrics[kind]['return_interval'][0])} to "
        f"{_cell(metrics[kind]['return_interval'][1])} | {_cell(metrics[kind]['mean_pellets'])} | "
        f"{_cell(metrics[kind]['mean_length'])} |"
        for kind, name in AGENTS
        if kind in metrics
    ]
    lines = [
        "# An agent trained in the dream, scored in the real game",
        f"Each agent trained for {metrics['steps']:,} environment steps with the same PPO recipe and seed; "
        f"each scored on {metrics['random']['episodes']} real `Pacman-v0` episodes, seeds "
        f"{metrics['evaluation_seeds'][0]:,} to {metrics['evaluation_seeds'][1]:,} (no training episode used them)."
        + (
            f" The learned game: `{metrics['checkpoint']}` (run in {metrics.get('runtime', 'torch')}); its "
            f"episodes started from: {CONTEXTS.get(metrics['context'], metrics['context'])}."
            if "dream" in metrics
            else ""
        ),
        "\n".join(
            [
                "| agent | mean real-game return | 95% interval | pellets eaten | episode length |",
                "|---|---|---|---|---|",
                *rows,
            ]
        ),
        f"Dream-trained return as a share of the real-trained one: {_cell(100 * metrics['dream_to_real_ratio'])}%."
        if "dream_to_real_ratio" in metrics
        else "",
        _in_dream(metrics.get("in_dream") or {}),
        "![learning curve](learning_curve.png)"
        + (" ![the dream-trained agent in the real game](dream_agent.gif)" if gif_frames is not None else ""),
        f"Produced by:\n\n```\n{metrics['command']}\n```",
    ]
    (out / "report.md").write_text("\n\n".join(line for line in lines if line) + "\n")


def _in_dream(in_dream: dict) -> str:
    """The trained agents in the learned game itself: what the model pays them, beside the real game."""
    if not in_dream:
        return ""
    rows = [
        f"| {name} | {_cell(in_dream[kind]['mean_return'])} | {_cell(in_dream[kind]['return_interval'][0])} to "
        f"{_cell(in_dream[kind]['return_interval'][1])} | {_cell(in_dream[kind]['mean_pellets'])} | "
        f"{_cell(in_dream[kind]['mean_length'])} |"
        for kind, name in AGENTS
        if kind in in_dream
    ]
    first = next(iter(in_dream.values()))
    return "\n\n".join(
        [
            f"The same agents in the learned game itself ({first['episodes']} episodes each from the real "
            f"game's start, at most {first['limit']:,} steps; pellets: steps paying 1 or 5): what the model "
            "pays them. A "
            "dream return far above the real one means the agent found what the model gets wrong.",
            "\n".join(
                [
                    "| agent | mean learned-game return | 95% interval | pellets eaten | episode length |",
                    "|---|---|---|---|---|",
                    *rows,
                ]
            ),
        ]
    )


def plot_curves(path: Path, curves: dict) -> None:
    figure, axes = plt.subplots(figsize=(6, 3.5))
    for kind, points in curves.items():
        if points:
            steps, returns = zip(*points, strict=True)
            axes.plot(steps, returns, marker="o", label=f"trained in the {kind} game")
    axes.set_xlabel("environment steps")
    axes.set_ylabel("mean real-game return")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
