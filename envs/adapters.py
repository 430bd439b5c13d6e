"""Makes any Gymnasium game with image frames and discrete actions recordable by the project.

Frames are resized to the model's square size; a game gets the actions of its ``envs.games`` spec
(Ms. Pac-Man: our five, found by name among its nine). The wrappers record their arguments, so
``env.spec`` rebuilds the whole stack (``gymnasium.make(spec)``): that is what a Minari export
stores to recover the recorded env.
"""

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.utils import RecordConstructorArgs
from PIL import Image

from envs.games import game_action_meanings, game_spec, register_game_package
from envs.maze import ACTION_MEANINGS


class ResizeFrame(gymnasium.ObservationWrapper, RecordConstructorArgs):
    """Resizes HxWx3 uint8 frames to frame_size x frame_size (area averaging down, bilinear up)."""

    def __init__(self, env: gymnasium.Env, frame_size: int):
        RecordConstructorArgs.__init__(self, frame_size=frame_size)
        super().__init__(env)
        height, width = env.observation_space.shape[:2]
        shrinking = height >= frame_size and width >= frame_size
        self._resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
        self._size = frame_size
        self.observation_space = spaces.Box(0, 255, (frame_size, frame_size, 3), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        image = Image.fromarray(observation).resize((self._size, self._size), self._resample)
        return np.asarray(image, dtype=np.uint8).copy()


class FiveActions(gymnasium.ActionWrapper, RecordConstructorArgs):
    """Restricts a Pac-Man-family game to NOOP, UP, RIGHT, LEFT, DOWN, found by name."""

    def __init__(self, env: gymnasium.Env, game_meanings: list[str]):
        RecordConstructorArgs.__init__(self, game_meanings=list(game_meanings))
        super().__init__(env)
        self._game_actions = [game_meanings.index(name) for name in ACTION_MEANINGS]
        self.action_space = spaces.Discrete(len(ACTION_MEANINGS))

    def action(self, action) -> int:
        return self._game_actions[int(action)]


class LabelledActions(gymnasium.Wrapper, RecordConstructorArgs):
    """Carries ``action_meanings``, the names of the actions the recorder stores with the data."""

    def __init__(self, env: gymnasium.Env, action_meanings: tuple[str, ...]):
        RecordConstructorArgs.__init__(self, action_meanings=list(action_meanings))
        super().__init__(env)
        self.action_meanings = tuple(action_meanings)


def make_env(env_id: str, frame_size: int = 64, **kwargs) -> gymnasium.Env:
    """The game ``env_id`` with frame_size x frame_size uint8 frames and a Discrete action space.

    ``kwargs`` go to ``gymnasium.make`` (e.g. ``render_mode``, ``max_episode_steps``). The action
    names are ``env.get_wrapper_attr("action_meanings")`` (also ``env.action_meanings``).
    Raises ValueError for an unknown id, non-image observations or non-discrete actions.
    """
    if not isinstance(frame_size, int) or frame_size < 1:
        raise ValueError(f"frame_size must be a positive int (e.g. 64), got {frame_size!r}.")
    register_game_package(env_id)
    try:
        env = gymnasium.make(env_id, **kwargs)
    except gymnasium.error.Error as error:
        raise ValueError(
            f"Unknown env id {env_id!r} ({error}). Check the id, e.g. 'Pacman-v0' or "
            "'ALE/MsPacman-v5', and that the package that registers it is installed."
        ) from error

    if not isinstance(env.action_space, spaces.Discrete):
        env.close()
        raise ValueError(
            f"{env_id} has actions {env.action_space}, not a Discrete space; the world model "
            "conditions on discrete actions, so pick a game with a Discrete action space."
        )

    observation_space = env.observation_space
    is_image = (
        isinstance(observation_space, spaces.Box)
        and observation_space.dtype == np.uint8
        and len(observation_space.shape) == 3
        and observation_space.shape[2] == 3
    )
    if not is_image:
        env.close()
        raise ValueError(
            f"{env_id} observes {observation_space}, not image frames; the world model needs "
            "Box(0, 255, (H, W, 3), uint8) observations (e.g. an ALE game or Pacman-v0)."
        )

    game_meanings = game_action_meanings(env)
    spec = game_spec(env_id, game_meanings)
    if spec.action_meanings != tuple(game_meanings):  # Ms. Pac-Man: Pacman's five of its nine
        env = FiveActions(env, game_meanings)
        game_meanings = list(spec.action_meanings)
    if observation_space.shape[:2] != (frame_size, frame_size):
        env = ResizeFrame(env, frame_size)
    return LabelledActions(env, tuple(game_meanings))
