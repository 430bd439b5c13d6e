"""Many copies of the learned game stepped in one forward pass of the world model, for RL throughput.
Under the same seeds copy i plays exactly the episodes of a ``WorldModelEnv`` seeded ``seed + i``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from worldmodel.contexts import begin_episode, real_game_start
from worldmodel.env import LearnedGame, WorldModelEnv
from worldmodel.game_step import LatentGames
from worldmodel.model import WorldModel


class WorldModelVectorEnv(LearnedGame, VectorEnv):
    """``num_envs`` learned games with next-step autoreset: the step after an episode ends resets that
    copy (its action is ignored, reward 0, flags False) and returns the new episode's first frame.

    ``gymnasium.make_vec("WorldModel-v0", num_envs=N, ...)`` builds it with the keywords of
    ``WorldModelEnv`` and the registered ``max_episode_steps`` of 1000; made directly, as the single
    env, it sets no step limit unless given one.
    """

    metadata = {
        "render_modes": ["rgb_array"],
        "render_fps": WorldModelEnv.metadata["render_fps"],
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int,
        checkpoint: str | Path | WorldModel | None = None,
        render_mode: str | None = None,
        **options,
    ):
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        game_spaces = self._set_up({"checkpoint": checkpoint, **options}, render_mode)
        self.single_observation_space, self.single_action_space = game_spaces
        self.num_envs = num_envs
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.contexts = [None] * num_envs  # each copy's current episode start
        # One random stream per copy, as a single env has: that is what makes copies reproducible alone.
        self.env_rngs = [seeding.np_random()[0] for _ in range(num_envs)]
        self._games = LatentGames(self.model, num_envs)
        self._observations = np.zeros(self.observation_space.shape, dtype=self.observation_space.dtype)
        # Each copy's frame: the observations themselves when they are frames; when they are latents, a
        # start's real frame is shown as it is and generated ones are decoded only when rendered
        # (_drawn says which are current).
        size = self.settings.frame_size
        self._frames = (
            self._observations
            if self.observation == "frames"
            else np.zeros((num_envs, size, size, 3), dtype=np.uint8)
        )
        self._drawn = np.zeros(num_envs, dtype=bool)
        self._step_counts = np.zeros(num_envs, dtype=np.int64)
        self._needs_reset = np.zeros(num_envs, dtype=bool)
        self._started = False

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        """Resets every copy, or those in ``options["reset_mask"]``; ``seed=s`` seeds copy i with s + i."""
        if isinstance(seed, int | np.integer):
            super().reset(seed=int(seed))
            seed = [int(seed) + i for i in range(self.num_envs)]
        elif seed is None:
            seed = [None] * self.num_envs
        if len(seed) != self.num_envs:
            raise ValueError(f"reset needs {self.num_envs} seeds (one per copy), got {len(seed)}")
        mask = np.ones(self.num_envs, dtype=bool)
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], dtype=bool)
            if mask.shape != (self.num_envs,):
                raise ValueError(f"reset_mask must have shape ({self.num_envs},), got {mask.shape}")
        if not self._started and not mask.all():
            raise RuntimeError("the first reset must reset every copy; call reset() without reset_mask")
        indices = np.flatnonzero(mask)
        for index in indices:
            if seed[index] is not None:
                self.env_rngs[index] = seeding.np_random(seed[index])[0]
        self._start(indices)
        self._started = True
        # As the single env's reset info: how to bring the real game to each copy's start.
        starts = [real_game_start(context) if context is not None else {} for context in self.contexts]
        real_seeds = np.array([start.get("real_game_seed") for start in starts], dtype=object)
        real_actions = np.empty(self.num_envs, dtype=object)
        real_actions[:] = [start.get("real_game_actions") for start in starts]
        info = {"step": self._step_counts.copy(), "_step": mask}
        info |= {"real_game_seed": real_seeds, "_real_game_seed": mask}
        info |= {"real_game_actions": real_actions, "_real_game_actions": mask}
        return self._observations.copy(), info

    def _start(self, indices: np.ndarray) -> None:
        episodes = [begin_episode(self.context_source, self.env_rngs[i]) for i in indices]
        contexts = [context for context, _ in episodes]
        self._games.start(list(indices), contexts, [sampling_seed for _, sampling_seed in episodes])
        for index, context in zip(indices, contexts, strict=True):
            self.contexts[index] = context
            self._frames[index] = context.frames[-1]
            if self.observation == "latents":
                self._observations[index] = self._games.history_latents[index, -1].cpu().numpy()
        self._drawn[indices] = True
        self._step_counts[indices] = 0
        self._needs_reset[indices] = False

    def step(self, actions):
        if not self._started:
            raise RuntimeError("WorldModelVectorEnv.step() was called before reset(); call reset() first")
        actions = self._check_actions(actions)
        resetting = self._needs_reset.copy()
        stepping = np.flatnonzero(~resetting)
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        end_probability = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        if len(stepping):
            subset = None if len(stepping) == self.num_envs else stepping  # no gather when all step
            decode = self.observation == "frames"
            step = self._games.step(torch.from_numpy(actions[stepping]), self.sampler, subset, decode=decode)
            if decode:
                self._frames[stepping] = step.frames
            else:
                self._observations[stepping] = step.latents.cpu().numpy()
            self._drawn[stepping] = decode
            rewards[stepping] = step.reward
            end_probability[stepping] = step.end_probability
            self._step_counts[stepping] += 1
            terminated[stepping] = step.end_probability > self.end_threshold
            if self.max_episode_steps is not None:
                truncated[stepping] = self._step_counts[stepping] >= self.max_episode_steps
        if resetting.any():
            self._start(np.flatnonzero(resetting))
        self._needs_reset = terminated | truncated
        info = {
            "predicted_end_probability": end_probability,
            "_predicted_end_probability": ~resetting,
            "step": self._step_counts.copy(),
            "_step": np.ones(self.num_envs, dtype=bool),
        }
        return self._observations.copy(), rewards, terminated, truncated, info

    def _check_actions(self, actions) -> np.ndarray:
        actions = np.asarray(actions)
        n = self.single_action_space.n
        if actions.shape != (self.num_envs,) or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(
                f"actions must be {self.num_envs} integers in [0, {n}), got {actions.dtype} of shape {actions.shape}"
            )
        bad = (actions < 0) | (actions >= n)
        if bad.any():
            raise ValueError(
                f"actions {actions[bad].tolist()} are out of range: valid actions are 0 to {n - 1}"
            )
        return actions.astype(np.int64, copy=False)

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        undrawn = np.flatnonzero(~self._drawn)
        if len(undrawn):  # observing latents: the copies' generated frames, decoded only now
            index = torch.from_numpy(undrawn).to(self.model.device)
            self._frames[undrawn] = self._decode(self._games.history_latents[index, -1])
            self._drawn[undrawn] = True
        return tuple(self._frames.copy())

    def close_extras(self, **kwargs):
        self.context_source.close()
