"""The SB3 adapter of the batched learned game: SB3's same-step autoreset with terminal observations,
the same episodes as the single env under the same seeds, and a PPO learner running on it."""

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecFrameStack

import worldmodel.env
from worldmodel import WorldModelEnv, WorldModelVectorEnv
from worldmodel.sb3 import SB3VecEnv


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return worldmodel.env.load_world_model(tiny_checkpoint, "cpu")


def test_ended_copies_restart_in_the_same_step_with_their_last_frame_kept(model):
    vec_env = SB3VecEnv(WorldModelVectorEnv(2, model, max_episode_steps=3))
    vec_env.seed(5)
    first = vec_env.reset()
    singles = [WorldModelEnv(model, max_episode_steps=3) for _ in range(2)]
    for index, single in enumerate(singles):
        np.testing.assert_array_equal(single.reset(seed=5 + index)[0], first[index])
    actions = [[1, 2], [3, 4], [2, 2]]
    for step, step_actions in enumerate(actions):
        observations, rewards, dones, infos = vec_env.step(np.array(step_actions))
        assert rewards.dtype == np.float32 and dones.shape == (2,)
        for index, single in enumerate(singles):
            frame, reward, terminated, truncated, _ = single.step(step_actions[index])
            assert reward == pytest.approx(float(rewards[index]), abs=1e-4)
            assert dones[index] == (terminated or truncated) == (step == 2)
            if dones[index]:  # the episode's last frame is kept; the observation starts the next one
                assert infos[index]["TimeLimit.truncated"]
                assert np.abs(infos[index]["terminal_observation"].astype(int) - frame).max() <= 2
                frame, _ = single.reset()
            assert np.abs(observations[index].astype(int) - frame).max() <= 2
    vec_env.close()


def test_ppo_learns_on_it_with_frame_stacking(model):
    vec_env = VecFrameStack(SB3VecEnv(WorldModelVectorEnv(2, model, max_episode_steps=5)), n_stack=2)
    agent = PPO("CnnPolicy", vec_env, n_steps=8, batch_size=8, n_epochs=1, seed=0, device="cpu")
    agent.learn(total_timesteps=16)
    assert agent.num_timesteps == 16
    action, _ = agent.predict(vec_env.reset())
    assert action.shape == (2,)
