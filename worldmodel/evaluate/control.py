"""Controllability: does the generated Pacman stand where the real game puts him, under the recorded
actions and under action sequences unlike the recorder's explorer (uniform random, a maze circuit)?"""

from __future__ import annotations

import numpy as np

import envs
from envs.maze import DOWN, LEFT, NOOP, PACMAN_NEXT_TILE, REVERSE, RIGHT, UP
from worldmodel.evaluate.episodes import EpisodeStart, restore_game
from worldmodel.evaluate.fidelity import Rollouts
from worldmodel.evaluate.game_metrics import tile_agreement, tile_misses

CLOCKWISE = {UP: RIGHT, RIGHT: DOWN, DOWN: LEFT, LEFT: UP}
COUNTERCLOCKWISE = {after: before for before, after in CLOCKWISE.items()}


class MazeCircuit:
    """A scripted lap of the maze by the right-hand rule: turn right where possible, else straight,
    else left, else back. Deterministic and systematic, unlike the explorer's weighted choices."""

    def __init__(self, heading: int = LEFT):
        self.heading = heading

    def __call__(self, frame: np.ndarray) -> int:
        pacman = envs.parse_frame(frame).pacman
        if pacman is None:
            return self.heading
        row, col = pacman
        right, left = CLOCKWISE[self.heading], COUNTERCLOCKWISE[self.heading]
        for heading in (right, self.heading, left, CLOCKWISE[right]):
            if PACMAN_NEXT_TILE[row][col][heading] is not None:
                self.heading = heading  # always a move the maze allows, so the game takes it at once
                return heading
        return self.heading


def play_real_game(game, context: EpisodeStart, policy, steps: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """From the context's last frame, ``policy(frame) -> action`` plays the real game for up to ``steps``.

    Returns the actions, the frames they produced (fewer when the game ends) and whether the restored
    frame matched the recording.
    """
    frame, matches = restore_game(game, context)
    actions, frames = [], []
    for _ in range(steps):
        action = int(policy(frame))
        frame, _, terminated, truncated, _ = game.step(action)
        actions.append(action)
        frames.append(frame)
        if terminated or truncated:
            break
    return np.asarray(actions, dtype=np.int64), np.stack(frames), matches


def agreement_by_step(rollouts: Rollouts) -> np.ndarray:
    """(B, T) True where the generated Pacman is on the real Pacman's tile (False past a rollout's end)."""
    agree = np.zeros(rollouts.valid.shape, dtype=bool)
    for row, col in zip(*np.nonzero(rollouts.valid), strict=True):
        generated = envs.parse_frame(rollouts.generated[row, col])
        real = envs.parse_frame(rollouts.real[row, col])
        agree[row, col] = tile_agreement([generated], [real])[0]
    return agree


def tiles_at(rollouts: Rollouts, step: int) -> dict[str, int]:
    """At 1-based ``step``, over the rollouts that reach it: how many have Pacman on the real tile
    ("hits") and how the others fail (``tile_misses``). Parses only that step's frames."""
    rows = np.flatnonzero(rollouts.valid[:, step - 1])
    generated = [envs.parse_frame(rollouts.generated[row, step - 1]) for row in rows]
    real = [envs.parse_frame(rollouts.real[row, step - 1]) for row in rows]
    hits = int(tile_agreement(generated, real).sum())
    return {"hits": hits, **tile_misses(generated, real), "rollouts": len(rows)}


def ghost_agreement(rollouts: Rollouts, step: int) -> dict[str, float]:
    """Ghosts beside the real game's: the share of all frames whose ghost count (tiles showing a
    ghost) equals the real frame's, and at 1-based ``step`` the share of real ghost tiles that the
    generated frame also shows a ghost on."""
    counts_equal, on_tile, real_ghosts = [], 0, 0
    for row, col in zip(*np.nonzero(rollouts.valid), strict=True):
        generated = envs.parse_frame(rollouts.generated[row, col])
        real = envs.parse_frame(rollouts.real[row, col])
        counts_equal.append(len(generated.ghosts) == len(real.ghosts))
        if col == step - 1:
            on_tile += len(set(generated.ghosts) & set(real.ghosts))
            real_ghosts += len(real.ghosts)
    return {
        "count_agreement": float(np.mean(counts_equal)) if counts_equal else float("nan"),
        "tile_agreement": on_tile / real_ghosts if real_ghosts else float("nan"),
    }


# What the real Pacman did in one step, read off the real frames: the moves a world model must get
# right. "turn, key earlier" is a turn the game kept waiting after its key (the hidden state);
# "straight, key refused": a turn key pressed where the maze has no way, so Pacman goes on.
MOVES = (
    "straight",
    "straight, key refused",
    "turn, key now",
    "turn, key earlier",
    "reversal",
    "start",
    "stop",
    "still",
    "other",
)


def _move(before, after):
    """The direction that takes Pacman from tile ``before`` to ``after``, None when he stayed,
    "jump" when no single step does (a death, a new maze) or a tile is unknown."""
    if before is None or after is None:
        return "jump"
    if before == after:
        return None
    row, col = before
    for heading in (UP, RIGHT, LEFT, DOWN):
        if PACMAN_NEXT_TILE[row][col][heading] == after:
            return heading
    return "jump"


def classify_move(earlier, before, after, key: int) -> str:
    """One of ``MOVES`` for the real step from tile ``before`` to ``after`` under ``key``; ``earlier``
    is the tile a step before ``before`` (the heading Pacman had)."""
    heading, move = _move(earlier, before), _move(before, after)
    if move == "jump" or (heading == "jump" and move is not None):
        return "other"
    if move is None:
        return "stop" if heading not in (None, "jump") else "still"
    if heading is None:
        return "start"
    if move == heading:
        return "straight" if key in (NOOP, move) else "straight, key refused"
    if move == REVERSE[heading]:
        return "reversal"
    return "turn, key now" if key == move else "turn, key earlier"


def move_counts() -> dict[str, dict[str, int]]:
    """Per move: steps seen, misses (of which "missing": no Pacman drawn at all)."""
    return {move: {"steps": 0, "first_misses": 0, "missing": 0} for move in MOVES}


def tally(counts: dict, tiles: list, key: int, drawn) -> bool:
    """Counts one step whose real Pacman went through ``tiles`` (earlier, before, after) under ``key``
    and was drawn on tile ``drawn``; True when the drawing missed the real tile."""
    move = counts[classify_move(*tiles, key)]
    move["steps"] += 1
    if drawn == tiles[-1]:
        return False
    move["first_misses"] += 1
    move["missing"] += drawn is None
    return True


def first_misses_by_move(rollouts: Rollouts) -> dict[str, dict[str, int]]:
    """Where free-running rollouts first lose the real Pacman, by what the real Pacman did then.

    Every step a rollout still has Pacman on the real tile counts as a chance ("steps") of the real
    move it shows; the step where the generated Pacman first leaves the real tile counts as a miss
    of that move ("first_misses", of which "missing": no Pacman drawn at all). first_misses / steps
    is the per-step hazard of each move, the number to lower for the share at step 16 to rise."""
    counts = move_counts()
    for row, context in enumerate(rollouts.contexts):
        frames = context.episode.frames
        real = [
            envs.parse_frame(frames[context.last - 1]).pacman,
            envs.parse_frame(frames[context.last]).pacman,
        ]
        for step in np.flatnonzero(rollouts.valid[row]):
            real.append(envs.parse_frame(rollouts.real[row, step]).pacman)
            if real[-1] is None:
                break  # the real game shows no Pacman (he died): nothing to follow
            drawn = envs.parse_frame(rollouts.generated[row, step]).pacman
            if tally(counts, real[-3:], int(rollouts.actions[row, step]), drawn):
                break
    return counts
