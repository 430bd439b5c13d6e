"""Real games the world model learns from: our own Pacman and adapters for other Gymnasium games.

Importing this package registers ``Pacman-v0`` with Gymnasium (1000-step limit).
"""

import gymnasium

from envs.adapters import make_env
from envs.explorer import Explorer
from envs.games import (
    GAMES,
    PACMAN,
    GameSpec,
    UniformRandomPlayer,
    game_action_meanings,
    game_spec,
    gymnasium_package,
)
from envs.keymap import KEY_ACTIONS, action_from_keys, keys_to_action
from envs.maze import ACTION_MEANINGS, FRAME_SIZE
from envs.pacman import PacmanEnv
from envs.parse import PacmanState, parse_frame

if PACMAN.env_id not in gymnasium.registry:
    gymnasium.register(id=PACMAN.env_id, entry_point="envs.pacman:PacmanEnv", max_episode_steps=1000)

__all__ = [
    "ACTION_MEANINGS",
    "FRAME_SIZE",
    "GAMES",
    "KEY_ACTIONS",
    "Explorer",
    "GameSpec",
    "PacmanEnv",
    "PacmanState",
    "UniformRandomPlayer",
    "action_from_keys",
    "game_action_meanings",
    "game_spec",
    "gymnasium_package",
    "keys_to_action",
    "make_env",
    "parse_frame",
]
