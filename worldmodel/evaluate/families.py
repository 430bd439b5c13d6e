"""Control for every kind of play: the same keys sent to the real game and to the model, from
held-out starts, scored separately for each family of players (the recording, the explorer,
random and sticky presses, the human-like player, a maze circuit).

A family's keys come from its player reading the real game's frames, so the real game and the
learned one receive the very same sequence; the real game's frames are the answer key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import envs
from envs.maze import LEFT
from recorder.humanlike import HumanLikePlayer
from recorder.policies import RandomPolicy, StickyRandomPolicy
from worldmodel.evaluate.control import (
    CLOCKWISE,
    MazeCircuit,
    agreement_by_step,
    ghost_agreement,
    play_real_game,
    tiles_at,
)
from worldmodel.evaluate.episodes import Context, item_generators
from worldmodel.evaluate.fidelity import Rollouts, free_run
from worldmodel.evaluate.game_metrics import per_step_mean, share_interval
from worldmodel.metrics import pooled_psnr

FAMILIES = ("recorded", "explorer", "random", "sticky", "humanlike", "circuit")
TARGET_STEP = 16
DELTA_PSNR_STEPS = (4, 16)


def family_player(family: str, num_actions: int, seed: int, context: Context):
    """The player of ``family`` for one start: ``player(frame) -> action``."""
    if family == "explorer":
        return envs.Explorer(seed)
    if family == "random":
        return RandomPolicy(num_actions, seed)
    if family == "sticky":
        return StickyRandomPolicy(num_actions, seed)
    if family == "humanlike":
        return HumanLikePlayer(seed)
    if family == "taps":  # a turn tapped early and released, again and again: the game keeps it
        return HumanLikePlayer(seed, behaviours={"tap_turn": 1.0})
    if family == "circuit":
        moves = [a for a in context.actions().tolist() if a in CLOCKWISE]
        return MazeCircuit(moves[-1] if moves else LEFT)
    raise ValueError(f"unknown action family {family!r}; choose one of {FAMILIES} or 'taps'")


@dataclass
class FamilyPlay:
    """What a family's players did in the real game from each start: their keys and its frames."""

    family: str
    contexts: list[Context]
    actions: list[np.ndarray]  # per start (T_i,)
    frames: list[np.ndarray]  # per start (T_i, H, W, 3): the real game's answer to those keys
    replay_matched: float  # share of starts whose restored real frame equalled the recording


def play_family(game, family: str, contexts: list[Context], horizon: int, seed: int, num_actions: int):
    """Plays ``horizon`` steps of ``family`` in the real game from every context."""
    actions, frames, matched = [], [], []
    for row, context in enumerate(contexts):
        if family == "recorded":
            played, real = context.recorded_future(horizon)
            matches = True
        else:
            player = family_player(family, num_actions, seed * 100_003 + row, context)
            played, real, matches = play_real_game(game, context, player, horizon)
        actions.append(played)
        frames.append(real)
        matched.append(matches)
    return FamilyPlay(family, contexts, actions, frames, float(np.mean(matched)))


def usable(play: FamilyPlay) -> FamilyPlay:
    """The starts from which the game went on for at least one step (a context may end an episode)."""
    keep = [row for row, frames in enumerate(play.frames) if len(frames) > 0]
    pick = lambda items: [items[row] for row in keep]  # noqa: E731
    return FamilyPlay(
        play.family, pick(play.contexts), pick(play.actions), pick(play.frames), play.replay_matched
    )


def generate(model, play: FamilyPlay, seed: int, window_limit: int | None = None, **sampling) -> Rollouts:
    return free_run(
        model, play.contexts, play.actions, play.frames, seed, window_limit=window_limit, **sampling
    )


def random_keys_rollouts(model, play: FamilyPlay, seed: int, **sampling) -> Rollouts:
    """The same starts generated under uniformly random keys, compared with the family's real frames:
    the other half of Genie's controllability measure."""
    rng = np.random.default_rng([seed, 7])
    keys = [rng.integers(model.settings.num_actions, size=len(a)).astype(np.int64) for a in play.actions]
    return free_run(model, play.contexts, keys, play.frames, seed, **sampling)


def psnr_at(rollouts: Rollouts, step: int) -> float:
    """PSNR from the mean squared error of every rollout's frame at 1-based ``step`` that reached it."""
    if step > rollouts.valid.shape[1]:
        return float("nan")
    valid = rollouts.valid[:, step - 1]
    return pooled_psnr(rollouts.generated[:, step - 1], rollouts.real[:, step - 1], valid)


def delta_psnr(actual: Rollouts, random_keys: Rollouts, step: int) -> float:
    """Genie's ΔPSNR: PSNR(real, generated under the real keys) - PSNR(real, generated under random keys)."""
    return psnr_at(actual, step) - psnr_at(random_keys, step)


@torch.no_grad()
def teacher_forced_play(model, play: FamilyPlay, count: int, seed: int, **sampling) -> dict[str, float]:
    """Next-frame PSNR of the model and of copy-last on ``count`` steps of the family's real play,
    each predicted from the K real frames and the real keys before it (pooled over the frames)."""
    k, past = model.settings.history_length, model.settings.action_window - 1
    rows = [(row, step) for row, actions in enumerate(play.actions) for step in range(len(actions))]
    rng = np.random.default_rng([seed, 11])
    chosen = sorted(rng.choice(len(rows), size=min(count, len(rows)), replace=False).tolist())
    history_frames, windows, targets = [], [], []
    for index in chosen:
        row, step = rows[index]
        context = play.contexts[row]
        frames = np.concatenate([context.episode.frames[context.start : context.last + 1], play.frames[row]])
        history_frames.append(frames[step : step + k])  # the K real frames before the target
        keys = np.concatenate([context.actions(past).numpy(), play.actions[row][: step + 1]])
        windows.append(keys[-(past + 1) :])
        targets.append(frames[step + k])
    if not targets:
        return {"psnr": float("nan"), "psnr_copy_last": float("nan"), "windows": 0}
    history_frames, targets = np.stack(history_frames), np.stack(targets)
    predicted = []
    for first in range(0, len(targets), 64):
        chunk = slice(first, first + 64)
        latents = model.encode(torch.from_numpy(history_frames[chunk].reshape(-1, *targets.shape[1:])))
        history = latents.view(-1, k, *latents.shape[1:])  # (B, K, C, h, w)
        actions = torch.from_numpy(np.stack(windows[chunk])).to(model.device)
        generators = item_generators(seed, len(targets), model.device)[chunk]
        next_latents = model.predict_next(history, actions, generator=generators, **sampling)
        predicted.append(model.decode(next_latents).cpu().numpy())
    return {
        "psnr": pooled_psnr(np.concatenate(predicted), targets),
        "psnr_copy_last": pooled_psnr(history_frames[:, -1], targets),
        "windows": len(targets),
    }


def control_scores(rollouts: Rollouts, step: int = TARGET_STEP) -> dict:
    """Pacman on the real tile at ``step`` with its 95% interval, how misses fail, and the ghosts."""
    tiles = tiles_at(rollouts, step)
    hits, count = tiles["hits"], tiles["rollouts"]
    ghosts = ghost_agreement(rollouts, step)
    return {
        "pacman_tile_agreement_at_16": hits / count if count else float("nan"),
        "pacman_tile_agreement_at_16_interval": list(share_interval(hits, count)),
        "pacman_missing_at_16": tiles["missing"] / count if count else float("nan"),
        "rollouts_at_16": count,
        "ghost_tile_agreement_at_16": ghosts["tile_agreement"],
        "ghost_count_agreement": ghosts["count_agreement"],
    }


def curve_scores(rollouts: Rollouts) -> dict:
    """Pacman on the real tile at every step of longer rollouts (steps 1 to T)."""
    curve = per_step_mean(agreement_by_step(rollouts), rollouts.valid)
    return {"curve": curve, "rollouts": len(rollouts.contexts)}
