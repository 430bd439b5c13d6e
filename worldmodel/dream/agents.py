"""The agents of the dream experiment: one PPO recipe (SB3, CnnPolicy) trained in the learned game
or in the real one, each scored in the real game on seeds no training episode used."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.preprocessing import is_image_space_channels_first
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecFrameStack, VecNormalize

from envs.maze import START_PELLETS, START_POWER_PELLETS
from envs.pacman import PELLET_REWARD, POWER_PELLET_REWARD
from worldmodel.dream import AgentFileError
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


def dream_vec_env(model, num_envs: int, seed: int, context="real", horizon: int | None = None) -> VecEnv:
    """``num_envs`` learned games in one batch, starting from ``context`` (see WorldModelEnv), each
    episode cut after ``horizon`` steps (None: only the model's end head ends it). A cut episode is
    truncated, so PPO bootstraps its value there: imagination stays short, where the model is right."""
    from worldmodel.vector_env import WorldModelVectorEnv

    venv = SB3VecEnv(WorldModelVectorEnv(num_envs, model, context=context, max_episode_steps=horizon))
    venv.seed(seed)
    return venv


def wrap(venv: VecEnv, recipe: Recipe, training: bool = True) -> VecEnv:
    """The observation and reward processing both agents see: stacked frames, scaled rewards."""
    stacked = VecFrameStack(venv, n_stack=recipe.frame_stack)
    # Rewards of 1, 5 and 20 scaled by a running return estimate: PPO's value loss stays in range.
    return VecNormalize(stacked, norm_obs=False, norm_reward=True, gamma=recipe.gamma, training=training)


def new_agent(venv: VecEnv, recipe: Recipe, seed: int, log_dir: Path | None, device: str) -> PPO:
    return PPO(
        "CnnPolicy", venv, n_steps=recipe.n_steps, batch_size=recipe.batch_size, n_epochs=recipe.n_epochs,
        learning_rate=recipe.learning_rate, clip_range=recipe.clip_range, ent_coef=recipe.ent_coef,
        gamma=recipe.gamma, gae_lambda=recipe.gae_lambda, seed=seed, device=device,
        tensorboard_log=None if log_dir is None else str(log_dir), verbose=0,
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


def score_dream(agent: PPO, model, recipe: Recipe, episodes: int, context="real", limit: int = 1000) -> Score:
    """The agent in the learned game itself, from evaluation seeds: what it believes it earns, to set
    beside its real-game score. Each of the ``recipe.num_envs`` copies plays the same number of
    episodes (the first ones to end would favour short episodes); episodes stop at ``limit`` steps.
    Pellets: steps paying what the real game pays for a pellet or a power pellet."""
    from worldmodel.vector_env import WorldModelVectorEnv

    games = WorldModelVectorEnv(recipe.num_envs, model, context=context, max_episode_steps=limit)
    venv = VecFrameStack(SB3VecEnv(games), n_stack=recipe.frame_stack)
    venv.seed(EVALUATION_SEED)
    observation = venv.reset()
    quota = -(-episodes // recipe.num_envs)
    finished = [[] for _ in range(recipe.num_envs)]  # per copy: (return, pellets, length)
    running = np.zeros((recipe.num_envs, 3))
    while min(len(done) for done in finished) < quota:
        actions, _ = agent.predict(observation, deterministic=False)
        observation, rewards, dones, _ = venv.step(actions)
        running += np.stack(
            [rewards, np.isin(rewards, (PELLET_REWARD, POWER_PELLET_REWARD)), np.ones_like(rewards)], axis=1
        )
        for copy in np.flatnonzero(dones):
            finished[copy].append(running[copy].copy())
            running[copy] = 0
    venv.close()
    played = np.array([done[round_] for round_ in range(quota) for done in finished])[:episodes]
    return Score(played[:, 0], played[:, 1], played[:, 2])


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


def trained_agent(directory: str | Path, device: str = "cpu", recipe: Recipe = Recipe(num_envs=1)) -> PPO:
    """The PPO agent that ``python -m worldmodel.dream`` saved under ``OUT/agents/dream`` (or ``real``)."""
    path = Path(directory) / "agent.pt"
    if not path.is_file():
        raise AgentFileError(
            f"{path}: no trained agent there; pass the directory python -m worldmodel.dream wrote its "
            "agent to (OUT/agents/dream or OUT/agents/real)"
        )
    venv = wrap(real_vec_env(1, seed=0), recipe, training=False)
    agent = new_agent(venv, recipe, seed=0, log_dir=None, device=device)
    try:
        state = torch.load(path, weights_only=True, map_location=device)
        agent.policy.load_state_dict(state["policy"])
    except Exception as error:  # a damaged file, or an agent of another recipe or frame size
        raise AgentFileError(
            f"{path}: not an agent of this recipe ({error.__class__.__name__}: {str(error)[:200]}); "
            "train it again with python -m worldmodel.dream"
        ) from error
    venv.close()
    return agent


def frame_shape(agent: PPO, recipe: Recipe = Recipe()) -> tuple[int, int, int]:
    """(H, W, 3): one of the frames the agent reads (its policy sees them stacked, channels first)."""
    space = agent.observation_space
    channels, height, width = space.shape if is_image_space_channels_first(space) else np.roll(space.shape, 1)
    return int(height), int(width), int(channels) // recipe.frame_stack


class AgentPlayer:
    """A trained agent as a player reading one frame at a time (``player(frame) -> action``), as the
    evaluation's action families play: it stacks the frames itself, starting from the frames seen
    before the first one it is shown, and samples its keys from its own seeded generator."""

    def __init__(self, agent: PPO, seed: int, before: np.ndarray | None = None, recipe: Recipe = Recipe()):
        self.agent, self.rng = agent, np.random.default_rng(seed)
        blank = np.zeros(frame_shape(agent, recipe), dtype=np.uint8)
        self.frames = deque([blank] * recipe.frame_stack, maxlen=recipe.frame_stack)
        self.frames.extend([] if before is None else before)  # the deque keeps the latest ones

    @torch.no_grad()
    def __call__(self, frame: np.ndarray) -> int:
        if frame.shape != self.frames[0].shape:
            raise AgentFileError(
                f"the agent reads {self.frames[0].shape} frames, this game shows {frame.shape}: evaluate it "
                "with a world model of the frame size it was trained on"
            )
        self.frames.append(frame)
        observation, _ = self.agent.policy.obs_to_tensor(np.concatenate(self.frames, axis=-1)[None])
        probs = self.agent.policy.get_distribution(observation).distribution.probs[0].cpu().double().numpy()
        return int(self.rng.choice(len(probs), p=probs / probs.sum()))
