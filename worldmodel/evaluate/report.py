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

from worldmodel.evaluate.names import (
    FIRST_MISSES,
    GHOST_COUNT,
    GHOST_TILE_AT_16,
    MISSING_AT_16,
    PELLETS_BACK,
    PSNR_COPY_LAST,
    PSNR_TEACHER_FORCED,
    SINGLE_PACMAN,
    SINGLE_PACMAN_REAL,
    STEP_FPS,
    TILE_AT_16,
    TILE_AT_16_INTERVAL,
    TILE_AT_64,
    WALLS,
)
from worldmodel.pictures import save_gif, upscale  # noqa: E402

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


def first_miss_table(by_family: dict[str, dict]) -> str:
    """A row per real move, a column per family: the share of steps with that move at which a rollout
    still on Pacman's tile first lost him (misses / steps; of those, how many drew no Pacman)."""
    families = [f for f, counts in by_family.items() if counts]
    moves = [m for m in next(iter(by_family.values()))] if families else []
    rows = []
    for move in moves:
        cells = [move]
        for family in families:
            c = by_family[family][move]
            share = f"{c['first_misses'] / c['steps']:.3f}" if c["steps"] else "n/a"
            cells.append(f"{share} ({c['first_misses']}/{c['steps']}, {c['missing']} missing)")
        rows.append(cells)
    return _table(["real move", *families], rows)


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
                ["model", m[PSNR_TEACHER_FORCED], m["ssim_teacher_forced"]],
                ["copy last frame", m[PSNR_COPY_LAST], m["ssim_copy_last"]],
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
    sections += _family_sections(m)
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
                    f"episode end (p > {_number(m['end_threshold'])})",
                    m["end_precision"],
                    m["end_recall"],
                    m["end_events"],
                    m["end_predicted"],
                ],
            ],
        ),
        f"Steps paid exactly the real game's reward: {_number(m['reward_exact'])}.",
        "## 6. Speed",
        _table(
            ["measure", "frames/s"],
            [["WorldModelEnv.step (batch 1)", m[STEP_FPS]]]
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
                    r[PSNR_TEACHER_FORCED],
                    r[TILE_AT_16],
                    r[STEP_FPS],
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
        f"{metrics['duration_s']:.0f} s with {metrics['torch_threads']} torch threads"
        f"{', the denoiser and decoder in ONNX Runtime' if metrics.get('runtime') == 'onnx' else ''}.",
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


def _interval(cell) -> str:
    return f"{_number(cell[0])}-{_number(cell[1])}" if cell else "n/a"


def _family_sections(m: dict) -> list[str]:
    """Section 3, a row per action family, and section 4, long play."""
    rows = m.get("families")
    if not rows:
        return []
    parsed = TILE_AT_16 in next(iter(rows.values()))
    header = ["family", "teacher-forced PSNR", "copy-last PSNR", "ΔPSNR at 4", "ΔPSNR at 16"]
    if parsed:
        header += ["Pacman on the real tile at 16", "95% interval", "rollouts", "at 64", "rollouts",
                   "Pacman missing at 16", "ghost count right", "ghost tiles at 16"]  # fmt: skip
    table = []
    for family, r in rows.items():
        cells = [
            family,
            r[PSNR_TEACHER_FORCED],
            r[PSNR_COPY_LAST],
            r["delta_psnr_at_4"],
            r["delta_psnr_at_16"],
        ]
        if parsed:
            cells += [r[TILE_AT_16], _interval(r[TILE_AT_16_INTERVAL]), r["rollouts_at_16"],
                      r[TILE_AT_64], r["rollouts_at_64"], r[MISSING_AT_16], r[GHOST_COUNT],
                      r[GHOST_TILE_AT_16]]  # fmt: skip
        table.append(cells)
    first = next(iter(rows.values()))
    sections = [
        "## 3. Control for every kind of play",
        "Each family's players press keys in the real game restored to held-out starts; the model gets the "
        "same keys. PSNRs come from the mean squared error over the family's frames (teacher-forced: "
        f"{first['teacher_forced_windows']} steps of real play, next frame from K real frames). ΔPSNR is "
        "Genie's controllability: PSNR under the real keys minus PSNR under random keys, against the real "
        f"frames ({first['delta_psnr_rollouts']} starts)."
        + (
            f" Pacman's tile at 16 and the ghosts: 16-step rollouts; at 64: {first['curve_rollouts']} rollouts "
            "of 64 steps; each counts (rollouts columns) where the real game lasted that long, which random "
            "keys rarely let it. Ghost count right: share of generated frames "
            "showing as many ghost tiles as the real frame; ghost tiles: share of real ghost tiles also "
            "showing a ghost."
            if parsed
            else ""
        ),
        _table(header, table),
    ]
    if m.get("agent"):
        sections.append(
            f"The agent family: the PPO agent in `{m['agent']}` (`python -m worldmodel.dream`) pressing the "
            "keys, reading the real frames four at a time and sampling its keys as it did in training."
        )
    if parsed and all(FIRST_MISSES in r for r in rows.values()):
        sections += [
            "Where the 16-step rollouts first lose Pacman, by what the real Pacman did at that step: the "
            "per-step hazard of each move (a turn with its key pressed now or pressed earlier and kept by "
            "the game, a reversal, starting, stopping, standing still; other: a death or a new maze).",
            first_miss_table({family: r[FIRST_MISSES] for family, r in rows.items()}),
        ]
    ablation = m.get("action_window_ablation")
    if ablation:
        sections.append(
            f"Action window ablation, turns tapped early and released ({ablation['rollouts']} rollouts): "
            f"Pacman on the real tile at 16 is {_number(ablation['pacman_tile_agreement_at_16_full'])} "
            f"({_interval(ablation['pacman_tile_agreement_at_16_full_interval'])}) reading the whole window "
            f"of {ablation['window']} actions, {_number(ablation['pacman_tile_agreement_at_16_short'])} "
            f"({_interval(ablation['pacman_tile_agreement_at_16_short_interval'])}) when older keys than the "
            f"latest {ablation['short_window']} are hidden."
        )
    if parsed:
        sections.append(
            "![control](control.png) ![human-like](control_humanlike.gif) ![random](control_random.gif)"
        )
    long_play = m.get("long_play")
    if long_play:
        sections += [
            "## 4. Long play",
            "Rollouts of the learned game with the player reading the generated frames, as a person at the "
            "keyboard does, and the real game beside it under the same keys (ghosts compared while it runs). "
            "Where the learned game ends an episode (its end head, as the env's `terminated`), both go on from "
            "another held-out start, as a reset would: our Pacman has one life, so no frame past an end "
            "belongs to the game. The real game's own frames give the reference for one Pacman.",
            _table(
                [
                    "keys",
                    "rollouts x steps",
                    "one Pacman",
                    "one Pacman, real game",
                    "ghost count right",
                    "walls",
                    "pellets back per rollout",
                    "episodes ended per rollout, learned / real",
                ],
                [
                    [
                        family,
                        f"{r['rollouts']} x {r['steps']}",
                        r[SINGLE_PACMAN],
                        r[SINGLE_PACMAN_REAL],
                        r[GHOST_COUNT],
                        r[WALLS],
                        r[PELLETS_BACK],
                        f"{r['learned_episode_ends']:.2f} / {r['real_episode_ends']:.2f}",
                    ]  # fmt: skip
                    for family, r in long_play.items()
                ],
            ),
            "![drift](drift.png) ![drift gif](drift.gif)",
        ]
    return sections
