"""The agents of the dream experiment: one PPO recipe (SB3, CnnPolicy) trained in the learned game
or in the real one, each scored in the real game on seeds no training episode used."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecFrameStack, VecNormalize

from envs.maze import START_PELLETS, START_POWER_PELLETS
from worldmodel.sb3 import SB3VecEnv

EVALUATION_SEED = 2_000_000  # real-game evaluation seeds start here; training never resets with these


@dataclass(frozen=True)
class Recipe:
    """The PPO settings both agents share (Atari-style PPO, sized for a CPU)."""

    num_envs: int = 8
    frame_stack: int = 4
    n_steps: int = 128
    batch_size: int = 256
    n_epochs: int = 4
    learning_rate: float = 2.5e-4
    clip_range: float = 0.1
    ent_coef: float = 0.01
    gamma: float = 0.99
    gae_lambda: float = 0.95


def real_vec_env(num_envs: int, seed: int) -> VecEnv:
    """``num_envs`` copies of the real game, each seeded once from ``seed``."""
    venv = DummyVecEnv([lambda: gymnasium.make("Pacman-v0") for _ in range(num_envs)])
    venv.seed(seed)
    return venv


def dream_vec_env(model, num_envs: int, seed: int, context="real") -> VecEnv:
    """``num_envs`` learned games in one batch, starting from ``context`` (see WorldModelEnv)."""
    from worldmodel.vector_env import WorldModelVectorEnv

    venv = SB3VecEnv(WorldModelVectorEnv(num_envs, model, context=context))
    venv.seed(seed)
    return venv


def wrap(venv: VecEnv, recipe: Recipe, training: bool = True) -> VecEnv:
    """The observation and reward processing both agents see: stacked frames, scaled rewards."""
    stacked = VecFrameStack(venv, n_stack=recipe.frame_stack)
    # Rewards of 1, 5 and 20 scaled by a running return estimate: PPO's value loss stays in range.
    return VecNormalize(stacked, norm_obs=False, norm_reward=True, gamma=recipe.gamma, training=training)


def new_agent(venv: VecEnv, recipe: Recipe, seed: int, log_dir: Path, device: str) -> PPO:
    return PPO(
        "CnnPolicy", venv, n_steps=recipe.n_steps, batch_size=recipe.batch_size, n_epochs=recipe.n_epochs,
        learning_rate=recipe.learning_rate, clip_range=recipe.clip_range, ent_coef=recipe.ent_coef,
        gamma=recipe.gamma, gae_lambda=recipe.gae_lambda, seed=seed, device=device,
        tensorboard_log=str(log_dir), verbose=0,
    )  # fmt: skip


@dataclass
class Score:
    """Returns, pellets eaten and lengths of real-game episodes."""

    returns: np.ndarray
    pellets: np.ndarray
    lengths: np.ndarray

    def summary(self) -> dict:
        half = 1.96 * self.returns.std(ddof=1) / np.sqrt(len(self.returns)) if len(self.returns) > 1 else 0.0
        mean = float(self.returns.mean())
        return {
            "mean_return": mean,
            "return_interval": [mean - half, mean + half],  # 95%, normal approximation
            "mean_pellets": float(self.pellets.mean()),
            "mean_length": float(self.lengths.mean()),
            "episodes": len(self.returns),
        }


@dataclass
class RealEpisode:
    """One real-game episode an actor played: its frames (the reset frame first) and what it earned."""

    seed: int
    frames: np.ndarray  # (T+1, H, W, 3)
    actions: np.ndarray  # (T,)
    total: float
    pellets: int


def play_real(act: Callable[[np.ndarray], int] | None, recipe: Recipe, seed: int, rng) -> RealEpisode:
    """One real episode from ``reset(seed=seed)``, ``act(stacked_obs) -> action`` choosing each key
    (``rng``'s uniform keys when None)."""
    venv = VecFrameStack(DummyVecEnv([lambda: gymnasium.make("Pacman-v0")]), n_stack=recipe.frame_stack)
    venv.seed(seed)
    observation = venv.reset()
    frames, actions, total, done = [observation[0, ..., -3:]], [], 0.0, False
    while not done:
        action = int(rng.integers(5)) if act is None else act(observation)
        observation, reward, dones, infos = venv.step(np.array([action]))
        done = bool(dones[0])
        # At the end the env has reset already: the episode's last frame is the terminal observation.
        frames.append(infos[0]["terminal_observation"][..., -3:] if done else observation[0, ..., -3:])
        actions.append(action)
        total += float(reward[0])
    venv.close()
    pellets = int(START_PELLETS.sum() + START_POWER_PELLETS.sum()) - infos[0]["pellets_left"]
    return RealEpisode(seed, np.stack(frames), np.array(actions, dtype=np.int64), total, pellets)


def score_real(
    act: Callable[[np.ndarray], int] | None, recipe: Recipe, episodes: int, record_first: bool = False
):
    """Plays ``episodes`` real episodes from seeds EVALUATION_SEED + i with ``act(stacked_obs) -> action``
    (uniformly random when None). Returns the Score and, if asked, the first episode's frames."""
    rng = np.random.default_rng(EVALUATION_SEED)
    played = [play_real(act, recipe, EVALUATION_SEED + episode, rng) for episode in range(episodes)]
    score = Score(
        np.array([e.total for e in played]),
        np.array([e.pellets for e in played]),
        np.array([len(e.actions) for e in played]),
    )
    return (score, played[0].frames[1:]) if record_first else score


class AgentContexts(BaseCallback):
    """Feeds a ContextPool with the agent's own real-game play: ``episodes`` real episodes before
    training and again every ``every`` steps, from training seeds (never the evaluation's), so that
    the learned game restarts from the states the current agent reaches (as DIAMOND does)."""

    def __init__(self, pool, recipe: Recipe, every: int, episodes: int, seed: int):
        super().__init__()
        self.pool, self.recipe, self.every, self.episodes = pool, recipe, every, episodes
        self.rng = np.random.default_rng([seed, 17])
        self._next = 0

    def collect(self) -> None:
        act = policy_actor(self.model)
        for _ in range(self.episodes):
            seed = int(self.rng.integers(EVALUATION_SEED))  # below the evaluation seeds
            episode = play_real(act, self.recipe, seed, self.rng)
            self.pool.add_episode(episode.frames, episode.actions, seed)

    def _on_training_start(self) -> None:
        if self.pool.episodes == 0:
            self.collect()
        self._next = self.num_timesteps + self.every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.every
            self.collect()
        return True


class RealGameCurve(BaseCallback):
    """Scores the agent in the real game every ``every`` steps: the learning curve."""

    def __init__(self, recipe: Recipe, every: int, episodes: int, curve: list):
        super().__init__()
        self.recipe, self.every, self.episodes, self.curve = recipe, every, episodes, curve
        self._next = every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.every
            score = score_real(policy_actor(self.model), self.recipe, self.episodes)
            self.curve.append([int(self.num_timesteps), score.summary()["mean_return"]])
        return True


def policy_actor(agent: PPO) -> Callable[[np.ndarray], int]:
    """``act(stacked_obs) -> action`` of a trained agent (sampled, as it acted in training)."""
    return lambda observation: int(agent.predict(observation, deterministic=False)[0][0])
