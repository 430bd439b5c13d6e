"""Stable-Baselines3 on the batched learned game: SB3 takes its own ``VecEnv``, which resets an
ended copy within the same step and hands back the last frame as ``terminal_observation``,
where a Gymnasium vector env with next-step autoreset resets it on the following step."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from stable_baselines3.common.vec_env import VecEnv


def _indices(indices, num_envs: int) -> list[int]:
    if indices is None:
        return list(range(num_envs))
    if isinstance(indices, int | np.integer):
        return [int(indices)]
    return [int(i) for i in indices]


class SB3VecEnv(VecEnv):
    """A Gymnasium vector env whose ``reset`` takes ``options={"reset_mask": ...}`` (as
    ``WorldModelVectorEnv`` does) seen as an SB3 ``VecEnv``: all copies step in one call."""

    def __init__(self, vector_env: gymnasium.vector.VectorEnv):
        self.vector_env = vector_env
        self._actions: np.ndarray | None = None
        super().__init__(
            vector_env.num_envs, vector_env.single_observation_space, vector_env.single_action_space
        )

    def reset(self):
        seeds = self._seeds if any(seed is not None for seed in self._seeds) else None
        observations, _ = self.vector_env.reset(seed=seeds)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return observations

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs).astype(np.int64)

    def step_wait(self):
        observations, rewards, terminated, truncated, _ = self.vector_env.step(self._actions)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if dones.any():
            for index in np.flatnonzero(dones):
                infos[index]["terminal_observation"] = observations[index].copy()
                # SB3 bootstraps the value of a cut-off episode, not of one that really ended.
                infos[index]["TimeLimit.truncated"] = bool(truncated[index] and not terminated[index])
            started, _ = self.vector_env.reset(options={"reset_mask": dones})
            ended = dones.reshape(-1, *[1] * (observations.ndim - 1))
            observations = np.where(ended, started, observations)
        return observations, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.vector_env.close()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        value = getattr(self.vector_env, attr_name)
        return [value for _ in _indices(indices, self.num_envs)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.vector_env, attr_name, value)  # one model serves every copy

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        result = getattr(self.vector_env, method_name)(*method_args, **method_kwargs)
        return [result for _ in _indices(indices, self.num_envs)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in _indices(indices, self.num_envs)]
