"""A player that presses keys the way a person does: holds a key for a while (into walls too),
taps a turn early and lets go, reverses, idles, and chases or flees the nearest ghost.

It reads Pacman and the walls from each frame with ``envs.parse_frame``; the world model has to
learn what these presses do, so the point is variety of key sequences, not good play.
"""

from __future__ import annotations

import numpy as np

from envs.maze import DELTAS, GRID, NOOP, REVERSE
from envs.parse import parse_frame

HEADINGS = tuple(DELTAS)  # UP, RIGHT, LEFT, DOWN
# Behaviours and how often each is picked when the last one ends.
BEHAVIOURS = ("hold", "hold_into_wall", "tap_turn", "idle", "reverse", "chase", "flee")
BEHAVIOUR_WEIGHTS = np.array([0.28, 0.10, 0.18, 0.12, 0.10, 0.11, 0.11])
DODGE_PROBABILITY = 0.8  # chance per step of fleeing a ghost within two tiles


class HumanLikePlayer:
    """Callable policy ``player(frame) -> action`` for Pacman frames; ``reset(seed)`` per episode."""

    def __init__(self, seed: int | None = None, behaviours: dict[str, float] | None = None):
        """``behaviours`` reweights BEHAVIOURS (e.g. {"tap_turn": 1.0} taps turns and nothing else)."""
        weights = behaviours or dict(zip(BEHAVIOURS, BEHAVIOUR_WEIGHTS, strict=True))
        unknown = set(weights) - set(BEHAVIOURS)
        if unknown:
            raise ValueError(f"unknown behaviours {sorted(unknown)}; choose from {BEHAVIOURS}")
        self._weights = np.array([weights.get(name, 0.0) for name in BEHAVIOURS], dtype=float)
        self._weights /= self._weights.sum()
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)
        self._last_tile: tuple[int, int] | None = None
        self._heading: int | None = None  # the direction Pacman last moved in, read from the frames
        self._behaviour, self._key, self._steps_left = "idle", NOOP, 0

    def __call__(self, observation: np.ndarray) -> int:
        state = parse_frame(observation)
        tile = state.pacman
        if tile is not None and self._last_tile is not None and tile != self._last_tile:
            self._heading = _direction(self._last_tile, tile)
        self._last_tile = tile
        if self._steps_left <= 0 or self._turn_taken():
            self._begin_behaviour(tile, state)
        near_ghost = self._behaviour != "flee" and tile is not None and _ghost_distance(tile, state) <= 2
        if near_ghost and self._rng.random() < DODGE_PROBABILITY:  # people mostly see a ghost coming
            self._behaviour, self._steps_left = "flee", int(self._rng.integers(3, 8))
        self._steps_left -= 1
        if self._behaviour in ("chase", "flee") and tile is not None:
            return self._ghost_key(tile, state, chase=self._behaviour == "chase")
        if self._behaviour == "tap_turn" and self._pressed:
            return NOOP  # released: the game keeps the request until the maze allows the turn
        self._pressed = True
        return self._key

    def _begin_behaviour(self, tile, state) -> None:
        rng = self._rng
        self._behaviour = BEHAVIOURS[rng.choice(len(BEHAVIOURS), p=self._weights)]
        self._pressed = False
        open_now = _open_headings(tile, state.walls) if tile is not None else list(HEADINGS)
        blocked = [h for h in HEADINGS if h not in open_now]
        if self._behaviour == "hold":
            self._key = int(rng.choice(open_now)) if open_now else int(rng.choice(HEADINGS))
            self._steps_left = int(rng.integers(3, 21))
        elif self._behaviour == "hold_into_wall":
            self._key = int(rng.choice(blocked)) if blocked else int(rng.choice(HEADINGS))
            self._steps_left = int(rng.integers(2, 13))
        elif self._behaviour == "tap_turn":
            # A turn pressed before the corridor allows it, then released: the game keeps the request
            # until the turn opens. Aim for the next side opening ahead; kept until taken or 24 steps.
            self._key = _next_opening(tile, self._heading, state.walls) if tile is not None else None
            if self._key is None:
                sideways = [h for h in HEADINGS if h != self._heading and h != REVERSE.get(self._heading)]
                self._key = int(rng.choice(sideways))
            self._steps_left = 24
        elif self._behaviour == "idle":
            self._key = NOOP
            self._steps_left = int(rng.integers(2, 16))
        elif self._behaviour == "reverse":
            self._key = REVERSE.get(self._heading, int(rng.choice(HEADINGS)))
            self._steps_left = int(rng.integers(1, 7))
        else:  # chase or flee
            self._key = NOOP
            self._steps_left = int(rng.integers(4, 16))

    def _turn_taken(self) -> bool:
        return self._behaviour == "tap_turn" and self._pressed and self._heading == self._key

    def _ghost_key(self, tile, state, chase: bool) -> int:
        options = _open_headings(tile, state.walls)
        if not state.ghosts or not options:
            return NOOP
        ghosts = np.array(state.ghosts)

        def nearest(heading: int) -> int:
            d_row, d_col = DELTAS[heading]
            row, col = (tile[0] + d_row) % GRID, (tile[1] + d_col) % GRID
            return int(np.min(np.abs(ghosts[:, 0] - row) + np.abs(ghosts[:, 1] - col)))

        distances = np.array([nearest(h) for h in options])
        best = distances.min() if chase else distances.max()
        return int(self._rng.choice([h for h, d in zip(options, distances, strict=True) if d == best]))


def _open_headings(tile: tuple[int, int], walls: np.ndarray) -> list[int]:
    row, col = tile
    return [
        h for h, (d_row, d_col) in DELTAS.items() if not walls[(row + d_row) % GRID, (col + d_col) % GRID]
    ]


def _ghost_distance(tile: tuple[int, int], state) -> int:
    """Tiles (Manhattan) to the nearest ghost; large when none is shown."""
    return min((abs(tile[0] - row) + abs(tile[1] - col) for row, col in state.ghosts), default=GRID * 2)


def _next_opening(tile: tuple[int, int], heading: int | None, walls: np.ndarray) -> int | None:
    """The side turn closed here that opens farthest ahead along ``heading`` (two tiles or more), if any.

    Pacman takes a requested turn at its first opening, so the farthest first opening is the
    longest the game will have to keep the request.
    """
    if heading is None:
        return None
    d_row, d_col = DELTAS[heading]
    row, col = tile
    closed_here = [h for h in HEADINGS if h not in _open_headings(tile, walls) and h != REVERSE[heading]]
    first_opening: dict[int, int] = {}
    for distance in range(1, GRID):
        row, col = (row + d_row) % GRID, (col + d_col) % GRID
        if walls[row, col]:
            break
        for side in _open_headings((row, col), walls):
            if side in closed_here and side != heading:
                first_opening.setdefault(side, distance)
    if not first_opening:
        return None
    side, distance = max(first_opening.items(), key=lambda item: item[1])
    return int(side) if distance >= 2 else None


def _direction(before: tuple[int, int], after: tuple[int, int]) -> int | None:
    """The heading of a one-tile move (the tunnel wraps); None for a jump such as a restart."""
    for heading, (d_row, d_col) in DELTAS.items():
        if ((before[0] + d_row) % GRID, (before[1] + d_col) % GRID) == after:
            return heading
    return None
