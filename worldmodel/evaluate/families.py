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
from recorder.policies import make_policy
from worldmodel.contexts import Context
from worldmodel.evaluate.control import (
    CLOCKWISE,
    MazeCircuit,
    agreement_by_step,
    first_misses_by_move,
    ghost_agreement,
    move_counts,
    play_real_game,
    tally,
    tiles_at,
)
from worldmodel.evaluate.episodes import EpisodeStart, sampling_seeds
from worldmodel.evaluate.fidelity import Rollouts, free_run, next_frames
from worldmodel.evaluate.game_metrics import per_step_mean, share_interval
from worldmodel.evaluate.names import (
    FIRST_MISSES,
    GHOST_COUNT,
    GHOST_TILE_AT_16,
    MISSING_AT_16,
    PSNR_COPY_LAST,
    TILE_AT_16,
    TILE_AT_16_INTERVAL,
)
from worldmodel.metrics import pooled_psnr
from worldmodel.sampler import Sampler

FAMILIES = ("recorded", "explorer", "random", "sticky", "humanlike", "circuit")
TARGET_STEP = 16
DELTA_PSNR_STEPS = (4, 16)


# The families the recorder also plays, under its policy names (`python -m recorder --policy NAME`).
RECORDER_POLICIES = {"explorer": "explore", "random": "random", "sticky": "sticky", "humanlike": "humanlike"}


def family_player(family: str, game, seed: int, context: EpisodeStart, agent=None):
    """The player of ``family`` for one start in ``game`` (the real env): ``player(frame) -> action``.
    The "agent" family is a trained PPO ``agent`` (``python -m worldmodel.dream``) reading the frames."""
    if family == "agent":
        from worldmodel.dream.agents import AgentPlayer  # Stable-Baselines3 only when an agent plays

        if agent is None:
            raise ValueError("the agent family needs a trained agent (evaluate --agent DIR)")
        return AgentPlayer(agent, seed, before=context.episode.frames[: context.last])
    if family in RECORDER_POLICIES:
        return make_policy(RECORDER_POLICIES[family], game, seed)
    if family == "taps":  # a turn tapped early and released, again and again: the game keeps it
        return HumanLikePlayer(seed, behaviours={"tap_turn": 1.0})
    if family == "circuit":
        moves = [a for a in context.actions().tolist() if a in CLOCKWISE]
        return MazeCircuit(moves[-1] if moves else LEFT)
    raise ValueError(f"unknown action family {family!r}; choose one of {FAMILIES}, 'agent' or 'taps'")


@dataclass
class FamilyPlay:
    """What a family's players did in the real game from each start: their keys and its frames."""

    family: str
    contexts: list[EpisodeStart]
    actions: list[np.ndarray]  # per start (T_i,)
    frames: list[np.ndarray]  # per start (T_i, H, W, 3): the real game's answer to those keys
    replay_matched: float  # share of starts whose restored real frame equalled the recording


def play_family(game, family: str, contexts: list[EpisodeStart], horizon: int, seed: int, agent=None):
    """Plays ``horizon`` steps of ``family`` in the real game from every context."""
    actions, frames, matched = [], [], []
    for row, context in enumerate(contexts):
        if family == "recorded":
            played, real = context.recorded_future(horizon)
            matches = True
        else:
            player = family_player(family, game, seed * 100_003 + row, context, agent)
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


def generate(
    model, play: FamilyPlay, seed: int, window_limit: int | None = None, sampler: Sampler | None = None
) -> Rollouts:
    return free_run(model, play.contexts, play.actions, play.frames, seed, window_limit, sampler)


def random_keys_rollouts(model, play: FamilyPlay, seed: int, sampler: Sampler | None = None) -> Rollouts:
    """The same starts generated under uniformly random keys, compared with the family's real frames:
    the other half of Genie's controllability measure."""
    rng = np.random.default_rng([seed, 7])
    keys = [rng.integers(model.settings.num_actions, size=len(a)).astype(np.int64) for a in play.actions]
    return free_run(model, play.contexts, keys, play.frames, seed, sampler=sampler)


def psnr_at(rollouts: Rollouts, step: int) -> float:
    """PSNR from the mean squared error of every rollout's frame at 1-based ``step`` that reached it."""
    if step > rollouts.valid.shape[1]:
        return float("nan")
    valid = rollouts.valid[:, step - 1]
    return pooled_psnr(rollouts.generated[:, step - 1], rollouts.real[:, step - 1], valid)


def delta_psnr(actual: Rollouts, random_keys: Rollouts, step: int) -> float:
    """Genie's ΔPSNR: PSNR(real, generated under the real keys) - PSNR(real, generated under random keys)."""
    return psnr_at(actual, step) - psnr_at(random_keys, step)


def real_windows(model, play: FamilyPlay, chosen: list[tuple[int, int]]):
    """For each (start, step) of the family's real play: the context of the K real frames and the
    keys before that step, its key, and the real frames (K+1) from the context to its answer."""
    k, past = model.settings.history_length, model.settings.action_window - 1
    contexts, actions, frames_through = [], [], []
    played = {}  # per start: its context and real frames, and keys, joined once
    for row, step in chosen:
        if row not in played:
            start = play.contexts[row]
            played[row] = (
                np.concatenate([start.episode.frames[start.start : start.last + 1], play.frames[row]]),
                np.concatenate([start.actions(past).numpy(), play.actions[row]]),
            )
        frames, keys = played[row]
        # the K real frames before the target and the keys before it; seed and replay are not needed
        contexts.append(Context(frames[step : step + k], keys[step : step + past], None, None))
        actions.append(keys[step + past])
        frames_through.append(frames[step : step + k + 1])
    return contexts, np.array(actions, dtype=np.int64), frames_through


def all_steps(play: FamilyPlay) -> list[tuple[int, int]]:
    return [(row, step) for row, actions in enumerate(play.actions) for step in range(len(actions))]


@torch.no_grad()
def teacher_forced_play(
    model, play: FamilyPlay, count: int, seed: int, sampler: Sampler | None = None
) -> dict[str, float]:
    """Next-frame PSNR of the model and of copy-last on ``count`` steps of the family's real play,
    each predicted from the K real frames and the real keys before it (pooled over the frames)."""
    rows = all_steps(play)
    rng = np.random.default_rng([seed, 11])
    chosen = sorted(rng.choice(len(rows), size=min(count, len(rows)), replace=False).tolist())
    contexts, actions, frames_through = real_windows(model, play, [rows[i] for i in chosen])
    if not contexts:
        return {"psnr": float("nan"), PSNR_COPY_LAST: float("nan"), "windows": 0}
    targets = np.stack([frames[-1] for frames in frames_through])
    predicted = next_frames(model, contexts, actions, sampling_seeds(seed, len(targets)), sampler)
    return {
        "psnr": pooled_psnr(predicted, targets),
        PSNR_COPY_LAST: pooled_psnr(np.stack([c.frames[-1] for c in contexts]), targets),
        "windows": len(targets),
    }


@torch.no_grad()
def one_step_misses_by_move(model, play: FamilyPlay, seed: int, sampler: Sampler | None = None) -> dict:
    """Every step of the family's real play predicted from the real frames before it: how often the
    predicted Pacman is off the real tile, by the real move (``first_misses_by_move``'s counts, where
    every step is a first step). Beside the free-running hazards, this tells a move the model cannot
    make from clean frames apart from one it fails only once its own frames have drifted."""
    contexts, actions, frames_through = real_windows(model, play, all_steps(play))
    counts = move_counts()
    if not contexts:
        return counts
    predicted = next_frames(model, contexts, actions, sampling_seeds(seed, len(contexts)), sampler)
    for frames, key, generated in zip(frames_through, actions, predicted, strict=True):
        tiles = [envs.parse_frame(f).pacman for f in frames[-3:]]
        if tiles[-1] is not None:  # else he died: nothing to follow
            tally(counts, tiles, int(key), envs.parse_frame(generated).pacman)
    return counts


def control_scores(rollouts: Rollouts, step: int = TARGET_STEP) -> dict:
    """Pacman on the real tile at ``step`` with its 95% interval, how misses fail, and the ghosts."""
    tiles = tiles_at(rollouts, step)
    hits, count = tiles["hits"], tiles["rollouts"]
    ghosts = ghost_agreement(rollouts, step)
    return {
        TILE_AT_16: hits / count if count else float("nan"),
        TILE_AT_16_INTERVAL: list(share_interval(hits, count)),
        MISSING_AT_16: tiles["missing"] / count if count else float("nan"),
        "rollouts_at_16": count,
        GHOST_TILE_AT_16: ghosts["tile_agreement"],
        GHOST_COUNT: ghosts["count_agreement"],
        FIRST_MISSES: first_misses_by_move(rollouts),
    }


def curve_scores(rollouts: Rollouts) -> dict:
    """Pacman on the real tile at every step of longer rollouts (steps 1 to T), and how many rollouts
    reached step T (a real game that ends sooner drops out of the later steps)."""
    curve = per_step_mean(agreement_by_step(rollouts), rollouts.valid)
    return {
        "curve": curve,
        "rollouts": len(rollouts.contexts),
        "reached_end": int(rollouts.valid[:, -1].sum()),
    }
