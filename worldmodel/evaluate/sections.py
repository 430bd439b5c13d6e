"""The evaluation's sections on play: control for every family of players (a row per family) and
long play under a person's and an agent's keys, each writing its numbers into ``metrics``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import envs
from worldmodel.evaluate import families as fam
from worldmodel.evaluate import report
from worldmodel.evaluate.drift import drift
from worldmodel.evaluate.episodes import choose_contexts
from worldmodel.evaluate.game_metrics import at_step
from worldmodel.evaluate.names import (
    GHOST_COUNT,
    PELLETS_BACK,
    PSNR_COPY_LAST,
    PSNR_TEACHER_FORCED,
    SINGLE_PACMAN,
    SINGLE_PACMAN_REAL,
    TILE_AT_16,
    TILE_AT_16_INTERVAL,
    TILE_AT_64,
    WALLS,
)

ANY_GAME_FAMILIES = ("recorded", "random", "sticky")  # players that need no frame parser
LONG_PLAY_FAMILIES = ("humanlike", "random")
DRIFT_MARKS = (100, 500, 1000)


def families_section(
    model, held_out, plan, seed: int, out: Path, metrics: dict, curves: dict, agent=None
) -> None:
    """A row per action family: teacher-forced PSNR against copy-last on the family's real play,
    Pacman on the real tile (steps 1-64, a 95% interval at 16), missing Pacman, ghosts and ΔPSNR;
    then the action-window ablation on tapped-and-released turns. With a trained PPO ``agent``, the
    agent is one more family."""
    settings = model.settings
    parsed = envs.game_spec(settings.env_id, settings.action_meanings).has_game_state
    k = settings.history_length
    short = choose_contexts(
        held_out, k, fam.TARGET_STEP, np.random.default_rng([seed, 16]), plan.family_starts_per_episode
    )
    long = choose_contexts(
        held_out, k, plan.horizon, np.random.default_rng([seed, 64]), plan.family_curve_starts_per_episode
    )
    game = envs.make_env(settings.env_id, frame_size=settings.frame_size)
    rows, shown = {}, {}
    try:
        families = fam.FAMILIES if parsed else ANY_GAME_FAMILIES
        for family in (*families, "agent") if agent is not None else families:
            play = fam.usable(fam.play_family(game, family, short, fam.TARGET_STEP, seed, agent))
            rollouts = fam.generate(model, play, seed)
            row = fam.teacher_forced_play(model, play, plan.family_windows, seed)
            row = {PSNR_TEACHER_FORCED: row["psnr"], PSNR_COPY_LAST: row[PSNR_COPY_LAST],
                   "teacher_forced_windows": row["windows"], "replay_matched": play.replay_matched}  # fmt: skip
            subset = fam.FamilyPlay(
                family,
                *(x[: plan.delta_psnr_starts] for x in (play.contexts, play.actions, play.frames)),
                1.0,
            )
            actual = rollouts.head(len(subset.contexts))  # the same starts, keys and generators
            random_keys = fam.random_keys_rollouts(model, subset, seed)
            for step in fam.DELTA_PSNR_STEPS:
                row[f"delta_psnr_at_{step}"] = fam.delta_psnr(actual, random_keys, step)
            row["delta_psnr_rollouts"] = len(subset.contexts)
            if parsed:
                row.update(fam.control_scores(rollouts))
                long_play = fam.usable(fam.play_family(game, family, long, plan.horizon, seed + 1, agent))
                scores = fam.curve_scores(fam.generate(model, long_play, seed))
                curve = curves[f"pacman_tile_agreement_{family}"] = scores["curve"]
                row[TILE_AT_64] = at_step(curve, plan.horizon)
                row["curve_rollouts"], row["rollouts_at_64"] = scores["rollouts"], scores["reached_end"]
                shown[family] = rollouts
            rows[family] = row
        if parsed:
            metrics["action_window_ablation"] = window_ablation(model, game, short, seed)
    finally:
        game.close()
    metrics["families"] = rows
    if parsed:
        metrics[TILE_AT_16] = rows["recorded"][TILE_AT_16]
        metrics[TILE_AT_16_INTERVAL] = rows["recorded"][TILE_AT_16_INTERVAL]
        report.plot_curves(
            out / "control.png", "share of frames with Pacman on the real tile",
            {family: curves[f"pacman_tile_agreement_{family}"] for family in rows}, share=True,
        )  # fmt: skip
        for family in ("humanlike", "random"):
            report.save_side_by_side(out / f"control_{family}.gif", shown[family], 0)


def window_ablation(model, game, contexts, seed: int) -> dict:
    """Turns tapped early and released, the model reading its whole action window or only the
    latest K+1 actions (older keys shown as no key): how much the long window matters."""
    settings = model.settings
    play = fam.usable(fam.play_family(game, "taps", contexts, fam.TARGET_STEP, seed))
    result = {
        "rollouts": len(play.contexts),
        "window": settings.action_window,
        "short_window": settings.history_length + 1,
    }
    for name, limit in (("full", None), ("short", settings.history_length + 1)):
        scores = fam.control_scores(fam.generate(model, play, seed, window_limit=limit))
        result[f"{TILE_AT_16}_{name}"] = scores[TILE_AT_16]
        result[f"{TILE_AT_16}_{name}_interval"] = scores[TILE_AT_16_INTERVAL]
    return result


def long_play_section(
    model, contexts, plan, seed: int, out: Path, metrics: dict, curves: dict, progress
) -> None:
    """``drift_rollouts`` rollouts of ``drift_steps`` per family, all in one batch, the players
    reading the generated frames: one Pacman, the real ghost count, walls, pellets coming back. A
    rollout whose learned game ends goes on from another held-out start, as the env's reset does."""
    starts = [contexts[row % len(contexts)] for row in range(plan.drift_rollouts)]
    players, families = [], []
    game = envs.make_env(model.settings.env_id, frame_size=model.settings.frame_size)
    try:  # the players read the generated frames; the real game only tells them its actions
        for family in LONG_PLAY_FAMILIES:
            for row, context in enumerate(starts):
                players.append(fam.family_player(family, game, seed * 1_000 + row, context))
                families.append(family)
    finally:
        game.close()
    restarts = contexts[len(starts) :] + contexts[: len(starts)]  # the starts not yet used come first
    result = drift(
        model,
        starts * len(LONG_PLAY_FAMILIES),
        plan.drift_steps,
        seed,
        players=players,
        progress=progress,
        restarts=restarts,
    )
    families = np.array(families)
    rows = {}
    for family in LONG_PLAY_FAMILIES:
        mine = families == family
        running = result["real_running"][mine]
        rows[family] = {
            "rollouts": int(mine.sum()),
            "steps": plan.drift_steps,
            SINGLE_PACMAN: float((result["pacman_tiles"][mine] == 1).mean()),
            GHOST_COUNT: float(result["ghost_count_equal"][mine][running].mean())
            if running.any()
            else float("nan"),
            "ghost_frames_compared": int(running.sum()),
            SINGLE_PACMAN_REAL: float((result["real_pacman_tiles"][mine][running] == 1).mean())
            if running.any()
            else float("nan"),
            "learned_episode_ends": float(result["learned_ends"][mine].mean()),
            "real_episode_ends": float(result["real_ends"][mine].mean()),
            WALLS: float(result[WALLS][mine].mean()),
            PELLETS_BACK: float(result[PELLETS_BACK][mine].mean()),
        }
    metrics["long_play"] = rows
    walls = curves[WALLS] = result[WALLS].mean(axis=0)
    single = curves[SINGLE_PACMAN] = (result["pacman_tiles"] == 1).mean(axis=0)
    for mark in DRIFT_MARKS:
        # A shortened (--quick) run reads each mark at the same fraction of its horizon.
        metrics[f"{WALLS}_at_{mark}"] = at_step(walls, round(mark * plan.drift_steps / 1000))
    metrics["drift_steps"] = plan.drift_steps
    metrics["single_pacman_fraction"] = float(single.mean())
    metrics[PELLETS_BACK] = float(result[PELLETS_BACK].mean())
    report.plot_curves(
        out / "drift.png", "share over the long-play rollouts",
        {"wall tiles matching the maze": walls, "frames with exactly one Pacman": single}, share=True,
    )  # fmt: skip
    report.save_gif_frames(out / "drift.gif", result["gif_frames"])
