"""The evaluation's scores as small pure functions of frames, parsed game states and boolean arrays,
so each can be checked on constructed cases with known answers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from envs.maze import GRID, PALETTE_NAMES, TILE
from envs.parse import PACMAN_MIN_PIXELS, WALL_MIN_PIXELS, PacmanState, palette_labels

_PACMAN_LABEL = PALETTE_NAMES.index("pacman")
_WALL_LABEL = PALETTE_NAMES.index("wall")


def tile_agreement(generated_states: Sequence[PacmanState], real_states: Sequence[PacmanState]) -> np.ndarray:
    """Per frame pair: True where the generated frame shows Pacman on the real frame's tile."""
    return np.array([g.pacman == r.pacman for g, r in zip(generated_states, real_states, strict=True)])


def tile_misses(
    generated_states: Sequence[PacmanState], real_states: Sequence[PacmanState]
) -> dict[str, int]:
    """How the generated frames that disagree with a real Pacman fail: no Pacman read at all
    ("missing": lost, smeared or faded) or a Pacman on another tile ("elsewhere": a wrong move)."""
    misses = {"missing": 0, "elsewhere": 0}
    for generated, real in zip(generated_states, real_states, strict=True):
        if real.pacman is not None and generated.pacman != real.pacman:
            misses["missing" if generated.pacman is None else "elsewhere"] += 1
    return misses


def share_interval(hits: int, count: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a share ``hits / count`` (95% at the default ``z``): the true shares
    that a draw of ``count`` rollouts cannot tell apart from the one it measured."""
    if count == 0:
        return float("nan"), float("nan")
    share, spread = hits / count, z * z / count
    centre = (share + spread / 2) / (1 + spread)
    half = z * math.sqrt(share * (1 - share) / count + spread / (4 * count)) / (1 + spread)
    return max(0.0, centre - half), min(1.0, centre + half)


def wall_agreement(state: PacmanState, maze_walls: np.ndarray) -> float:
    """Share of the maze's tiles whose wall / no-wall reading matches the real maze."""
    return float(np.mean(state.walls == maze_walls))


def pacman_tile_count(frame: np.ndarray) -> int:
    """Open tiles holding enough Pacman-yellow pixels to read as Pacman (the parser keeps only the best).

    A world model that smears or duplicates Pacman shows 2 or more; one that loses him shows 0.
    """
    labels = palette_labels(frame).reshape(GRID, TILE, GRID, TILE)
    pacman_pixels = (labels == _PACMAN_LABEL).sum(axis=(1, 3))
    walls = (labels == _WALL_LABEL).sum(axis=(1, 3)) >= WALL_MIN_PIXELS
    return int(((pacman_pixels >= PACMAN_MIN_PIXELS) & ~walls).sum())


def pellet_reappearances(states: Sequence[PacmanState]) -> int:
    """Tiles seen holding a pellet, later seen empty, and later still holding one again.

    "Empty" means visibly empty: Pacman and ghosts hide the tile under them, so a ghost passing over
    a pellet is not an eaten pellet. In the real game a pellet is gone once eaten, so this is 0.
    """
    had_pellet = np.zeros((GRID, GRID), dtype=bool)
    emptied = np.zeros((GRID, GRID), dtype=bool)
    reappeared = np.zeros((GRID, GRID), dtype=bool)
    for state in states:
        pellets = state.pellets | state.power_pellets
        covered = state.walls.copy()
        for tile in (*state.ghosts, *([state.pacman] if state.pacman is not None else [])):
            covered[tile] = True
        reappeared |= emptied & pellets
        emptied |= had_pellet & ~pellets & ~covered
        had_pellet |= pellets
    return int(reappeared.sum())


def per_step_mean(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Mean over rollouts (axis 0) of (B, T) values where ``valid``; NaN at steps no rollout reached."""
    values, valid = np.asarray(values, dtype=np.float64), np.asarray(valid, dtype=bool)
    counts = valid.sum(axis=0)
    totals = np.where(valid, values, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)


def at_step(curve: np.ndarray, step: int) -> float:
    """The value of a per-step curve at 1-based ``step`` (NaN when the curve is shorter)."""
    return float(curve[step - 1]) if 0 < step <= len(curve) else float("nan")
