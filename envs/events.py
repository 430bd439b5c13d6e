"""What happened in a Pacman episode: it is replayed from its seed and actions in the real game and
the moments a world model must learn are counted (stops, idles, reversals, long-waiting turns...)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from envs.maze import NOOP, REVERSE
from envs.pacman import GHOST_REWARD, POWER_PELLET_REWARD, PacmanEnv

EVENTS = (
    "steps",
    "stopped_against_wall",  # Pacman did not move: the way he faces is a wall
    "idle",  # no key pressed (NOOP)
    "reversal",  # Pacman turned back the way he came
    "turn_waited_over_4_steps",  # a turn taken more than 4 steps after its key was last pressed
    "power_pellet",
    "ghost_eaten",
    "death",
    "maze_cleared",
)


def episode_events(seed: int, actions: np.ndarray, game: PacmanEnv | None = None) -> Counter:
    """Counts of each of ``EVENTS`` in the episode that ``reset(seed=seed)`` and ``actions`` replay."""
    game = game or PacmanEnv()
    game.reset(seed=int(seed))
    counts = Counter({name: 0 for name in EVENTS})
    last_pressed: dict[int, int] = {}
    for step, action in enumerate(np.asarray(actions).tolist()):
        before, heading = game._pacman, game._heading
        if action != NOOP:
            last_pressed[action] = step
        _, reward, terminated, _, info = game.step(action)
        counts["steps"] += 1
        counts["idle"] += action == NOOP
        counts["stopped_against_wall"] += game._pacman == before
        counts["reversal"] += game._heading == REVERSE[heading]
        if game._heading != heading and step - last_pressed.get(game._heading, step) > 4:
            counts["turn_waited_over_4_steps"] += 1
        counts["ghost_eaten"] += int(reward // GHOST_REWARD)
        counts["power_pellet"] += int((reward % GHOST_REWARD) // POWER_PELLET_REWARD)
        if terminated:
            counts["maze_cleared" if info["pellets_left"] == 0 else "death"] += 1
    return counts


def recording_events(trajectories) -> Counter:
    """The events of every episode of a recorded Pacman file (``recorder.load``)."""
    game, total = PacmanEnv(), Counter({name: 0 for name in EVENTS})
    for index in range(len(trajectories)):
        total.update(episode_events(trajectories.seeds[index], trajectories.episode_actions(index), game))
    return total
