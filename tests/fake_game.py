"""A tiny seeded image game for recorder tests, registered as FakeImage-v0. A module of its own, light to
import: recorder worker processes load it by name (FAKE_ENV_ID) and should not pay for torch."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

FAKE_ENV_ID = "tests.fake_game:FakeImage-v0"


class FakeImageEnv(gym.Env):
    """Frames encode the step, the action and seeded noise."""

    metadata = {"render_modes": [], "render_fps": 15}

    def __init__(self, size: int = 8, max_length: int = 12):
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(5)
        self.size, self.max_length = size, max_length

    def _frame(self, action: int) -> np.ndarray:
        frame = self.np_random.integers(0, 256, (self.size, self.size, 3), dtype=np.uint8)
        frame[0, 0] = (self.t, action, 7)
        return frame

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.length = 0, int(self.np_random.integers(3, self.max_length))
        return self._frame(0), {}

    def step(self, action):
        self.t += 1
        return self._frame(int(action)), float(self.t), self.t >= self.length, False, {}

    def get_action_meanings(self):
        return ["NOOP", "UP", "RIGHT", "LEFT", "DOWN"]


def bad_policy(observation) -> int:
    return 7


if FAKE_ENV_ID.split(":")[1] not in gym.registry:
    # Registered at the model's frame size, so the adapter's resize leaves frames unchanged.
    gym.register("FakeImage-v0", entry_point=FakeImageEnv, kwargs={"size": 64})
