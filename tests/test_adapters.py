"""make_env serves image games with discrete actions at the model's frame size, and explains refusals."""

import numpy as np
import pytest

from envs import ACTION_MEANINGS, make_env
from envs.adapters import ResizeFrame


def test_pacman_is_served_without_resizing():
    env = make_env("Pacman-v0")
    frame, _ = env.reset(seed=0)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert env.get_wrapper_attr("action_meanings") == ACTION_MEANINGS
    wrapper = env
    while wrapper is not env.unwrapped:
        assert not isinstance(wrapper, ResizeFrame)
        wrapper = wrapper.env


def test_ms_pacman_short_episode_at_64_with_five_actions():
    env = make_env("ALE/MsPacman-v5", frame_size=64)
    assert env.action_space.n == 5
    assert env.observation_space.shape == (64, 64, 3)
    assert env.get_wrapper_attr("action_meanings") == ACTION_MEANINGS == env.action_meanings
    frame, _ = env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(30):
        frame, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
        assert isinstance(reward, float | int)
        if terminated or truncated:
            break
    assert frame.std() > 0  # a real picture, not a blank
    env.close()


def test_unknown_id_is_refused_with_a_hint():
    with pytest.raises(ValueError, match="Unknown env id 'NoSuchGame-v0'.*Check the id"):
        make_env("NoSuchGame-v0")


def test_non_image_observations_are_refused():
    with pytest.raises(ValueError, match="CartPole-v1 observes .*not image frames"):
        make_env("CartPole-v1")


def test_continuous_actions_are_refused():
    with pytest.raises(ValueError, match="Pendulum-v1 has actions Box.*not a Discrete space"):
        make_env("Pendulum-v1")


def test_bad_frame_size_is_refused():
    with pytest.raises(ValueError, match="frame_size must be a positive int"):
        make_env("Pacman-v0", frame_size=0)
