"""The model shipped in checkpoints/pacman-64: what `python play.py` and `gymnasium.make("WorldModel-v0")`
load on a fresh clone. It must load offline, play, and draw the maze it learned."""

import gymnasium
import numpy as np

import envs
import worldmodel  # noqa: F401  (registers WorldModel-v0)
from envs.maze import WALLS
from worldmodel.env import DEFAULT_CHECKPOINT


def test_the_default_checkpoint_is_shipped_and_plays_the_learned_game():
    assert (DEFAULT_CHECKPOINT / "world_model.json").is_file()
    env = gymnasium.make("WorldModel-v0")
    observation, _ = env.reset(seed=0)
    for action in (2, 2, 1, 3):  # RIGHT, RIGHT, UP, LEFT
        observation, reward, terminated, truncated, _ = env.step(action)
        assert observation.shape == (64, 64, 3) and observation.dtype == np.uint8
        assert isinstance(reward, float) and isinstance(terminated, bool)
    state = envs.parse_frame(observation)
    # A trained model keeps the maze: nearly every tile reads as the real wall layout.
    assert (state.walls == WALLS).mean() > 0.95
    env.close()
