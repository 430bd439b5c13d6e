"""The evaluation's outputs for people: matplotlib plots, real-beside-generated GIFs, metrics.json
and report.md with every table, the pictures and the command that produced them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from worldmodel.samples import save_gif, upscale  # noqa: E402

SEPARATOR = np.full((64, 2, 3), 128, dtype=np.uint8)  # grey column between real and generated


def plot_teacher_forced(scores: dict[str, np.ndarray], path: Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for axis, metric in zip(axes, ("psnr", "ssim"), strict=True):
        model, copy = scores[metric], scores[f"{metric}_copy_last"]
        bins = np.linspace(min(model.min(), copy.min()), max(model.max(), copy.max()) + 1e-6, 30)
        axis.hist(model, bins=bins, alpha=0.6, label="model")
        axis.hist(copy, bins=bins, alpha=0.6, label="copy last frame")
        axis.set_xlabel("PSNR (dB)" if metric == "psnr" else "SSIM")
        axis.set_ylabel("windows")
        axis.legend()
    figure.suptitle("Teacher-forced next frame")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_curves(path: Path, ylabel: str, curves: dict[str, np.ndarray], share: bool = False) -> None:
    """Per-step curves on one axis; ``share`` fixes the axis to [0, 1] so runs compare by eye."""
    figure, axis = plt.subplots(figsize=(7, 3.5))
    for label, curve in curves.items():
        axis.plot(np.arange(1, len(curve) + 1), curve, label=label)
    axis.set_xlabel("generated step")
    axis.set_ylabel(ylabel)
    if share:
        axis.set_ylim(-0.02, 1.02)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def save_side_by_side(path: Path, rollouts, row: int) -> None:
    """Real frames left, generated right, for one rollout up to where the real game ended."""
    steps = int(rollouts.valid[row].sum())
    real, generated = rollouts.real[row, :steps], rollouts.generated[row, :steps]
    separator = np.broadcast_to(SEPARATOR[: real.shape[1]], (steps, real.shape[1], *SEPARATOR.shape[1:]))
    save_gif(path, upscale(np.concatenate([real, separator, generated], axis=2)))


def save_gif_frames(path: Path, frames: np.ndarray) -> None:
    save_gif(path, upscale(frames))


def _jsonable(value):
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; null reads as "not measured"
    return value


def _number(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else ""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_number(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _sections(metrics: dict, out: Path) -> list[str]:
    m = metrics
    horizon = m["plan"]["horizon"]
    sections = [
        "## 1. Teacher-forced next frame",
        "Next-frame PSNR/SSIM from K real frames, against copying the last real frame; the autoencoder "
        "row is the decoder's ceiling (real frame encoded and decoded).",
        _table(
            ["", "PSNR (dB)", "SSIM"],
            [
                ["model", m["psnr_teacher_forced"], m["ssim_teacher_forced"]],
                ["copy last frame", m["psnr_copy_last"], m["ssim_copy_last"]],
                ["autoencoder", m["psnr_autoencoder"], None],
            ],
        ),
        "![teacher forced](teacher_forced.png)",
        "## 2. Free-running rollouts under the recorded actions",
        "PSNR of each generated frame against the recorded one, and of the last context frame held still.",
        _table(
            ["step", "model PSNR", "last context frame PSNR"],
            [
                [s, m[f"rollout_psnr_at_{s}"], m[f"rollout_psnr_copy_last_at_{s}"]]
                for s in sorted({1, 16, horizon})
            ],
        ),
        "![rollout psnr](rollout_psnr.png)",
        " ".join(f"![rollout {p.stem}]({p.name})" for p in sorted(out.glob("rollout_*.gif"))),
    ]
    if "pacman_tile_agreement_mean" in m:
        sections += [
            "## 3. Controllability",
            "Share of generated frames whose Pacman (parse_frame) stands on the real game's Pacman tile. "
            "Random: uniform actions; circuit: a right-hand-rule lap of the maze; both played in the real "
            "game restored to the same context.",
            _target_line(m),
            _table(
                ["actions", "at step 16", f"mean over {horizon} steps"],
                [
                    [
                        kind,
                        m[f"pacman_tile_agreement_at_16{suffix}"],
                        m[f"pacman_tile_agreement_mean{suffix}"],
                    ]
                    for kind, suffix in (("recorded", ""), ("random", "_random"), ("circuit", "_circuit"))
                ],
            ),
            _misses_line(m.get("pacman_misses_at_16")),
            "![control](control.png) ![circuit](circuit_0.gif)",
            "## 4. Drift",
            f"{m['plan']['drift_rollouts']} rollouts of {m['drift_steps']} steps, actions from the explorer "
            "reading the generated frames.",
            _table(
                [
                    "wall agreement at 100",
                    "at 500",
                    "at 1000",
                    "frames with one Pacman",
                    "pellets reappearing",
                ],
                [
                    [
                        m["wall_agreement_at_100"],
                        m["wall_agreement_at_500"],
                        m["wall_agreement_at_1000"],
                        m["single_pacman_fraction"],
                        m["pellet_reappearances"],
                    ]
                ],
            ),
            "![drift](drift.png) ![drift gif](drift.gif)",
        ]
    sections += [
        "## 5. Reward and end heads (real transitions)",
        _table(
            ["head", "precision", "recall", "events", "predicted"],
            [
                [
                    "pellet reward (> 0.5)",
                    m["reward_precision"],
                    m["reward_recall"],
                    m["reward_events"],
                    m["reward_predicted"],
                ],
                [
                    "episode end (p > 0.5)",
                    m["end_precision"],
                    m["end_recall"],
                    m["end_events"],
                    m["end_predicted"],
                ],
            ],
        ),
        "## 6. Speed",
        _table(
            ["measure", "frames/s"],
            [["WorldModelEnv.step (batch 1)", m["step_fps"]]]
            + [
                [f"batched step ({key.rsplit('_', 1)[1]} games)", value]
                for key, value in m.items()
                if key.startswith("batched_fps_")
            ],
        ),
        "## 7. Sampler ablations",
        f"Each setting varied alone around the checkpoint's defaults, on {m['ablation_sizes']['windows']} "
        f"teacher-forced windows and {m['ablation_sizes']['contexts']} free-running starts.",
        _table(
            ["setting", "value", "default", "teacher-forced PSNR", "Pacman tile agreement at 16", "step fps"],
            [
                [
                    r["setting"],
                    r["value"],
                    r["default"],
                    r["psnr_teacher_forced"],
                    r["pacman_tile_agreement_at_16"],
                    r["step_fps"],
                ]
                for r in m["ablations"]
            ],
        ),
    ]
    return sections


def write(out: Path, metrics: dict, notes: list[str], command: str) -> None:
    """Writes metrics.json and report.md into ``out`` (the plots and GIFs are already there)."""
    metrics = _jsonable(metrics)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    header = [
        f"# Evaluation of {metrics['checkpoint']}",
        f"Held-out data: `{metrics['data']}` (episodes {metrics['episodes_used']}), seed {metrics['seed']}, "
        f"{metrics['duration_s']:.0f} s with {metrics['torch_threads']} torch threads.",
        f"Produced by:\n\n```\n{command}\n```",
    ]
    if metrics["quick"]:
        header.append(
            "**Quick run**: fewer windows, shorter rollouts and drift; its marks 100/500/1000 are read at "
            "the same fraction of the shortened horizon. Not comparable with a full run."
        )
    header += [f"Note: {note}" for note in notes]
    (out / "report.md").write_text(
        "\n\n".join(part for part in header + _sections(metrics, out) if part) + "\n"
    )


def _target_line(m: dict) -> str:
    """Where the recorded row's step-16 share comes from: its own, larger set of short rollouts."""
    low, high = m["pacman_tile_agreement_at_16_interval"]
    return (
        f"The recorded row's step-16 share is read on its own {m['plan']['target_starts_per_episode']} "
        f"starts per episode, rollouts of 16 steps (95% interval {_number(low)} to {_number(high)}); the "
        f"other cells on {m['plan']['contexts_per_episode']} starts per episode, rollouts of "
        f"{m['plan']['horizon']} steps."
    )


def _misses_line(misses: dict | None) -> str:
    if not misses:
        return ""
    return (
        f"Under the recorded actions, {misses['rollouts']} rollouts reach step 16; there "
        f"{misses['missing']} show no Pacman (lost or faded) and {misses['elsewhere']} show him on "
        "another tile."
    )
