"""What the project knows about each game, in one place: a ``GameSpec`` per game, looked up by env id.

Pacman (``Pacman-v0``) and Ms. Pac-Man (``ALE/MsPacman-v5`` and its older ALE ids) are registered
here; any other Gymnasium game gets a generic spec built from its actions. This is the one module
that tells games apart by their env id: the recorder, the world model, play.py and the evaluation
ask ``game_spec(env_id)`` what a game offers (a scripted explorer, a frame parser, a key map)
instead of testing the id themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import gymnasium
import numpy as np

from envs.explorer import Explorer
from envs.keymap import action_from_keys, key_map
from envs.maze import ACTION_MEANINGS
from envs.parse import PacmanState, parse_frame

Player = Callable[[np.ndarray], int]  # frame -> action index, with an optional reset(seed)


class UniformRandomPlayer:
    """Uniform over ``num_actions``, seeded per episode: the scripted player of games without one."""

    def __init__(self, num_actions: int, seed: int | None = None):
        self.num_actions = num_actions
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, frame: np.ndarray) -> int:
        return int(self.rng.integers(self.num_actions))


@dataclass(frozen=True)
class GameSpec:
    """One game as the project knows it.

    ``action_meanings`` are the actions the project records and the model is conditioned on (Ms.
    Pac-Man's nine are reduced to these five by name, see ``envs.adapters``). ``key_actions`` maps a
    pygame key to an action (``envs.keymap.key_map``). ``explorer`` builds, from a seed, the game's
    scripted player that reads its frames (Pacman's ``Explorer``), None where the game has none.
    ``parse_frame`` reads a frame into a ``PacmanState``, None where frames cannot be read: the
    game-state metrics (Pacman's tile, ghosts, walls, pellets) exist only where it is set.
    """

    env_id: str
    action_meanings: tuple[str, ...]
    key_actions: Mapping[int, int] = field(hash=False)
    explorer: Callable[[int | None], Player] | None = None
    parse_frame: Callable[[np.ndarray], PacmanState] | None = None

    @property
    def num_actions(self) -> int:
        return len(self.action_meanings)

    @property
    def has_game_state(self) -> bool:
        """True where frames can be read into game state, so the Pacman-tile metrics apply."""
        return self.parse_frame is not None

    def scripted_player(self, seed: int | None = None) -> Player:
        """The player that starts and drives episodes without a person: the game's explorer, or
        uniform random actions for a game without one."""
        if self.explorer is not None:
            return self.explorer(seed)
        return UniformRandomPlayer(self.num_actions, seed)

    def action_from_keys(self, pressed: Iterable[int] | Mapping[int, bool]) -> int:
        """The action for the keys held (see ``envs.keymap.action_from_keys``), with this game's keys."""
        return action_from_keys(pressed, self.key_actions)


def generic_spec(env_id: str, action_meanings: Sequence[str]) -> GameSpec:
    """The spec of a game the project knows nothing special about: its own actions, keys by their
    names, uniform random play and no frame parser."""
    meanings = tuple(action_meanings)
    return GameSpec(env_id, meanings, MappingProxyType(key_map(meanings)))


PACMAN = replace(generic_spec("Pacman-v0", ACTION_MEANINGS), explorer=Explorer, parse_frame=parse_frame)
# Ms. Pac-Man: the Atari game's nine actions reduced to Pacman's five; our explorer and parser read
# only our own maze, so it is played at random and scored without game-state metrics.
MS_PACMAN = generic_spec("ALE/MsPacman-v5", ACTION_MEANINGS)
_MS_PACMAN_OLDER_IDS = ("MsPacman-v0", "MsPacman-v4", "MsPacmanNoFrameskip-v0", "MsPacmanNoFrameskip-v4")

GAMES: Mapping[str, GameSpec] = MappingProxyType(
    {
        PACMAN.env_id: PACMAN,
        MS_PACMAN.env_id: MS_PACMAN,
        **{env_id: replace(MS_PACMAN, env_id=env_id) for env_id in _MS_PACMAN_OLDER_IDS},
    }
)


def gymnasium_package(env_id: str) -> str | None:
    """The pip package besides this project that registers ``env_id`` with Gymnasium: ale-py for the
    Atari games (the ``ALE/`` ids and Ms. Pac-Man's older ones), None for ours and Gymnasium's own."""
    return "ale-py" if env_id.startswith("ALE/") or env_id in _MS_PACMAN_OLDER_IDS else None


def register_game_package(env_id: str) -> None:
    """Registers the ids of ``env_id``'s package with Gymnasium, so ``gymnasium.make(env_id)`` finds it."""
    if gymnasium_package(env_id) == "ale-py":
        import ale_py

        gymnasium.register_envs(ale_py)


def game_spec(env_id: str, action_meanings: Sequence[str] | None = None) -> GameSpec:
    """The registered spec of ``env_id``, or a generic one for its actions.

    For an unregistered game the action names are ``action_meanings`` when given (e.g. a checkpoint's),
    else read by making the game once, which needs its package installed.
    """
    spec = GAMES.get(env_id)
    if spec is not None:
        return spec
    if action_meanings is None:
        register_game_package(env_id)
        game = gymnasium.make(env_id)
        try:
            if not isinstance(game.action_space, gymnasium.spaces.Discrete):
                raise ValueError(
                    f"{env_id} has actions {game.action_space}, not a Discrete space; the world model "
                    "conditions on discrete actions, so pick a game with a Discrete action space."
                )
            action_meanings = game_action_meanings(game)
        finally:
            game.close()
    return generic_spec(env_id, action_meanings)


def game_action_meanings(env: gymnasium.Env) -> list[str]:
    """The names of ``env``'s actions: the project's labels (``action_meanings``, e.g. set by
    ``envs.make_env``), else the game's own (``get_action_meanings``, ALE), else ACTION_<i>."""
    try:
        return list(env.get_wrapper_attr("action_meanings"))
    except AttributeError:
        pass
    if hasattr(env.unwrapped, "get_action_meanings"):
        return list(env.unwrapped.get_action_meanings())
    return [f"ACTION_{index}" for index in range(int(env.action_space.n))]
