"""A scripted Pacman player that covers the maze, the default policy for recording data.

It reads Pacman and the walls from each frame, follows corridors, prefers less-visited tiles at
junctions, steps away from nearby ghosts, and now and then plays NOOP or a reversal so that the
world model sees every action.
"""

import numpy as np

from envs.maze import DELTAS, GRID, NOOP, PEN, REVERSE
from envs.parse import parse_frame

HEADINGS = tuple(DELTAS)  # UP, RIGHT, LEFT, DOWN
_PEN_MASK = np.zeros((GRID, GRID), dtype=bool)
_PEN_MASK[tuple(np.array(sorted(PEN)).T)] = True


class Explorer:
    """Callable policy ``explorer(frame) -> action`` for Pacman frames; ``reset(seed)`` per episode."""

    def __init__(
        self, seed: int | None = None, noop_probability: float = 0.04, reverse_probability: float = 0.04
    ):
        self.noop_probability = noop_probability
        self.reverse_probability = reverse_probability
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        """Starts a new episode: forgets visited tiles and reseeds the random choices."""
        self._rng = np.random.default_rng(seed)
        self.visits = np.zeros((GRID, GRID), dtype=np.int64)
        self._heading = None
        self._last_action = NOOP

    def __call__(self, observation: np.ndarray) -> int:
        state = parse_frame(observation)
        if state.pacman is None:
            return self._last_action
        self._last_action = self._choose(state.pacman, ~state.walls & ~_PEN_MASK, state.ghosts)
        return self._last_action

    def _choose(self, tile: tuple[int, int], open_tiles: np.ndarray, ghosts) -> int:
        self.visits[tile] += 1
        row, col = tile
        ahead = {h: ((row + d_row) % GRID, (col + d_col) % GRID) for h, (d_row, d_col) in DELTAS.items()}
        options = [h for h in HEADINGS if open_tiles[ahead[h]]]
        if not options:
            return NOOP
        danger = {h: _ghost_danger(ahead[h], ghosts) for h in options}
        draw = self._rng.random()
        if self._heading in options and not danger[self._heading] and draw < self.noop_probability:
            return NOOP  # keeps the heading: the env moves on as if the last action were repeated
        reverse = REVERSE.get(self._heading)
        if reverse in options and draw > 1 - self.reverse_probability:
            self._heading = reverse
            return reverse
        forward = [h for h in options if h != reverse] or options
        safe = [h for h in forward if not danger[h]] or [h for h in options if not danger[h]] or forward
        if self._heading in safe and len(forward) == 1:
            return self._heading  # a corridor or a corner with one way on: keep going
        # At a junction: favour tiles seen least this episode, with randomness to vary episodes.
        weights = np.array([1.0 / (1.0 + self.visits[ahead[h]]) ** 2 for h in safe])
        self._heading = safe[int(self._rng.choice(len(safe), p=weights / weights.sum()))]
        return self._heading


def _ghost_danger(tile: tuple[int, int], ghosts) -> bool:
    """True when a ghost is on or next to ``tile`` (the frame does not say which ones are frightened)."""
    return any(abs(tile[0] - g_row) + abs(tile[1] - g_col) <= 1 for g_row, g_col in ghosts)
