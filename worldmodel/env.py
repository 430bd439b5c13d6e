"""The learned game as a Gymnasium environment: a checkpoint's world model samples each next frame,
its reward and the episode's end from the last K latents and actions, starting from K real frames."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gymnasium
import numpy as np
import torch
from gymnasium import spaces

import envs
import recorder
from envs.window import FrameWindow
from worldmodel.checkpoint import CheckpointError
from worldmodel.model import WorldModel, WorldModelSettings

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "pacman-64"
TRAIN_COMMAND = "python train.py --config configs/pacman-64.yaml --data data/pacman.h5 --out runs/pacman-64"


DEFAULT_THREADS = 1  # see use_threads


def use_threads(threads: int | None, device: str | torch.device = "cpu") -> None:
    """Sets torch's CPU threads for this process (None: DEFAULT_THREADS on the CPU, torch's own
    setting when the model runs on a GPU).

    One thread by default: a step of this small model gains little from a second, and when another
    program shares the CPU torch's threads spin-wait for each other and a step gets many times slower.
    """
    if threads is None and torch.device(device).type != "cpu":
        return
    threads = DEFAULT_THREADS if threads is None else int(threads)
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)


def load_world_model(checkpoint: str | Path | WorldModel | None, device: str | torch.device) -> WorldModel:
    """The model at ``checkpoint`` (a directory, or an already loaded model to share between envs)."""
    if isinstance(checkpoint, WorldModel):
        return checkpoint.to(device).eval()
    if checkpoint is None:
        if not DEFAULT_CHECKPOINT.is_dir():
            raise CheckpointError(
                f"no shipped checkpoint at {DEFAULT_CHECKPOINT}; train one with `{TRAIN_COMMAND}` and pass "
                "checkpoint='runs/pacman-64/checkpoint' (play.py --checkpoint runs/pacman-64/checkpoint)"
            )
        checkpoint = DEFAULT_CHECKPOINT
    return WorldModel.load(Path(checkpoint), device)


def check_action(action, num_actions: int) -> int:
    """``action`` as a Python int; a ValueError naming it and the valid range when it is not one."""
    if isinstance(action, np.ndarray) and action.shape == ():
        action = action[()]
    if isinstance(action, bool | np.bool_) or not isinstance(action, int | np.integer):
        raise ValueError(f"action must be an integer in [0, {num_actions}), got {action!r}")
    if not 0 <= action < num_actions:
        raise ValueError(f"action {int(action)} is out of range: valid actions are 0 to {num_actions - 1}")
    return int(action)


# ---- where episodes start ----------------------------------------------------------------------------
@dataclass
class Context:
    """K real frames an episode starts from, and how to reach the same point in the real game."""

    frames: np.ndarray  # (K, H, W, 3) uint8
    # (W-1,) int64: the actions before the next step, as the model's action window reads them; the
    # last K produced ``frames``; NOOP for a reset frame and before it
    actions: np.ndarray
    seed: int | None  # the real game's reset seed for this episode (None when unknown)
    replay_actions: np.ndarray  # actions that, after reset(seed=seed), lead to frames[-1]


class RealGameContext:
    """Contexts from the real game: a seeded reset, then K-1 steps of a seeded scripted player."""

    def __init__(self, settings: WorldModelSettings):
        self.settings = settings
        self._game: gymnasium.Env | None = None  # made on first use, kept for later episodes

    def draw(self, rng: np.random.Generator) -> Context:
        if self._game is None:
            self._game = envs.make_env(self.settings.env_id, frame_size=self.settings.frame_size)
        seed, policy_seed = (int(value) for value in rng.integers(2**31, size=2))
        # The game's explorer where it has one (Pacman's reads its frames), else uniform random actions.
        game = envs.game_spec(self.settings.env_id, self.settings.action_meanings)
        player = game.scripted_player(policy_seed)
        frame, _ = self._game.reset(seed=seed)
        frames, actions = [frame], [recorder.RESET_ACTION]
        for _ in range(self.settings.history_length - 1):
            action = player(frame)
            frame, *_ = self._game.step(action)
            frames.append(frame)
            actions.append(action)
        actions = np.asarray(actions, dtype=np.int64)
        window = recorder.action_window(actions, len(actions), self.settings.action_window - 1)
        return Context(np.stack(frames), window, seed, actions[1:])

    def close(self) -> None:
        if self._game is not None:
            self._game.close()
            self._game = None


class RecordedContext:
    """Contexts from a recorded file: K consecutive frames of a random episode, from a random start."""

    def __init__(self, path: str | Path, settings: WorldModelSettings):
        self.trajectories = recorder.load(path)
        self.history_length = settings.history_length
        self.past_actions = settings.action_window - 1
        problems = settings.recording_mismatches(self.trajectories)
        if problems:
            self.trajectories.close()
            raise ValueError(
                f"context file {path} does not fit this checkpoint: {'; '.join(problems)}. "
                f"Pass a file recorded from {settings.env_id} at {settings.frame_size}x{settings.frame_size}, "
                "or context='real'"
            )
        self.episodes = np.flatnonzero(self.trajectories.lengths + 1 >= self.history_length)
        if len(self.episodes) == 0:
            self.trajectories.close()
            raise ValueError(
                f"context file {path} has no episode of at least {self.history_length} frames; record longer ones"
            )

    def draw(self, rng: np.random.Generator) -> Context:
        k = self.history_length
        index = int(self.episodes[rng.integers(len(self.episodes))])
        episode = self.trajectories.episode(index)
        start = int(rng.integers(len(episode.frames) - k + 1))
        produced_by = recorder.producing_actions(episode.actions)
        return Context(
            frames=episode.frames[start : start + k],
            actions=recorder.action_window(produced_by, start + k, self.past_actions),
            seed=int(episode.seed),
            replay_actions=episode.actions[: start + k - 1].astype(np.int64),
        )

    def close(self) -> None:
        self.trajectories.close()


def make_context_source(context: str | Path, settings: WorldModelSettings):
    if isinstance(context, str) and context == "real":
        return RealGameContext(settings)
    return RecordedContext(context, settings)


def begin_episode(source, rng: np.random.Generator) -> tuple[Context, int]:
    """The context and the sampling seed of a new episode, both from the env's ``np_random``.

    The single and the batched env call this in the same order, so equal seeds give equal episodes.
    """
    context = source.draw(rng)
    return context, int(rng.integers(2**63))


def real_game_start(context: Context) -> dict:
    """``reset`` info that brings the real game to an episode's first frame: ``real_game_seed`` for
    its ``reset(seed=...)``, then ``real_game_actions`` stepped in order (None when unknown)."""
    return {"real_game_seed": context.seed, "real_game_actions": context.replay_actions.copy()}


# ---- the games in latent space -------------------------------------------------------------------------
class LatentGames:
    """B games advanced by the world model in one forward pass; histories stay in latent space."""

    def __init__(self, model: WorldModel, batch: int):
        s, device = model.settings, model.device
        self.model = model
        latent_shape = (s.latent_channels, s.latent_size, s.latent_size)
        self.history_latents = torch.zeros(
            batch, s.history_length, *latent_shape, device=device
        )  # (B, K, C, h, w)
        self.history_actions = torch.zeros(
            batch, s.action_window - 1, dtype=torch.long, device=device
        )  # (B, W-1) the action window less the action about to be taken
        self.generators = [torch.Generator(device) for _ in range(batch)]

    @torch.inference_mode()
    def start(self, indices: list[int], contexts: list[Context], seeds: list[int]) -> None:
        frames = torch.from_numpy(np.concatenate([c.frames for c in contexts]))  # (N*K, H, W, 3)
        latents = self.model.encode(frames)  # (N*K, C, h, w)
        k = self.history_latents.shape[1]
        for row, (index, context, seed) in enumerate(zip(indices, contexts, seeds, strict=True)):
            self.history_latents[index] = latents[row * k : (row + 1) * k]
            self.history_actions[index] = torch.from_numpy(context.actions)
            self.generators[index].manual_seed(seed)

    @torch.inference_mode()
    def step(self, actions: torch.Tensor, sampling: dict, indices: np.ndarray | None = None):
        """Advances the games ``indices`` (all when None) by ``actions`` (N,); ``sampling`` goes to predict_next.

        Returns their next frames uint8 (N, H, W, 3), rewards (N,) and end probabilities (N,) on the CPU.
        """
        select = slice(None) if indices is None else torch.from_numpy(indices).to(self.model.device)
        history_latents = self.history_latents[select]  # (N, K, C, h, w)
        actions = actions.to(self.model.device)
        action_window = torch.cat([self.history_actions[select], actions[:, None]], dim=1)  # (N, W)
        generators = self.generators if indices is None else [self.generators[i] for i in indices]
        next_latents = self.model.predict_next(
            history_latents, action_window, generator=generators, **sampling
        )  # (N, C, h, w)
        frames = self.model.decode(next_latents)  # (N, H, W, 3)
        reward, end_probability = self.model.predict_reward_end(history_latents[:, -1], next_latents, actions)
        self.history_latents[select] = torch.cat([history_latents[:, 1:], next_latents[:, None]], dim=1)
        self.history_actions[select] = action_window[:, 1:]
        return frames.cpu().numpy(), reward.float().cpu().numpy(), end_probability.float().cpu().numpy()


# ---- the single environment ----------------------------------------------------------------------------
class SamplingSettings:
    """The sampler settings a game may change between steps (play.py's keys do), shared by both envs."""

    sampling_steps: int | None
    guidance_scale: float | None
    context_noise: float | None

    def sampling(self) -> dict:
        """The sampler settings the next step uses."""
        return {
            "sampling_steps": self.sampling_steps,
            "guidance_scale": self.guidance_scale,
            "context_noise": self.context_noise,
        }


class WorldModelEnv(SamplingSettings, gymnasium.Env):
    """The learned game behind ``reset``/``step``, with the real game's observation and action spaces.

    ``context`` is "real" (start from the real game) or the path of a recorded trajectory file.
    ``sampling_steps``, ``guidance_scale`` and ``context_noise`` default to the checkpoint's and may be
    changed between steps. ``max_episode_steps`` truncates episodes; None (the default) sets no limit
    here, as ``gymnasium.make("WorldModel-v0")`` adds its TimeLimit of 1000 steps.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 10}

    def __init__(
        self,
        checkpoint: str | Path | WorldModel | None = None,
        context: str | Path = "real",
        max_episode_steps: int | None = None,
        sampling_steps: int | None = None,
        guidance_scale: float | None = None,
        context_noise: float | None = None,
        device: str | torch.device = "cpu",
        render_mode: str | None = None,
        window_scale: int = 8,
        end_threshold: float | None = None,
        threads: int | None = None,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}"
            )
        use_threads(threads, device)
        self.model = load_world_model(checkpoint, device)
        self.settings = self.model.settings
        size = self.settings.frame_size
        self.observation_space = spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_space = spaces.Discrete(self.settings.num_actions)
        self.action_meanings = tuple(self.settings.action_meanings)
        self.max_episode_steps = None if max_episode_steps is None else int(max_episode_steps)
        # Predicted end probability above which an episode ends; the checkpoint's choice by default.
        self.end_threshold = self.model.end_threshold if end_threshold is None else float(end_threshold)
        defaults = self.settings.sampler
        self.sampling_steps = defaults.sampling_steps if sampling_steps is None else int(sampling_steps)
        self.guidance_scale = defaults.guidance_scale if guidance_scale is None else float(guidance_scale)
        self.context_noise = defaults.context_noise if context_noise is None else float(context_noise)
        self.render_mode = render_mode
        self.window_scale = window_scale
        self.context_source = make_context_source(context, self.settings)
        self.context: Context | None = None  # the current episode's start
        self._games = LatentGames(self.model, batch=1)
        self._frame: np.ndarray | None = None
        self._step_count = 0
        self._window = FrameWindow("Pacman (world model)", window_scale, self.metadata["render_fps"])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.context, sampling_seed = begin_episode(self.context_source, self.np_random)
        self._games.start([0], [self.context], [sampling_seed])
        self._frame = self.context.frames[-1].copy()
        self._step_count = 0
        if self.render_mode == "human":
            self.render()
        return self._frame, {"step": 0, **real_game_start(self.context)}

    def step(self, action):
        if self.context is None:
            raise RuntimeError("WorldModelEnv.step() was called before reset(); call env.reset() first")
        action = check_action(action, self.action_space.n)
        frames, reward, end_probability = self._games.step(torch.tensor([action]), self.sampling())
        self._frame = frames[0]
        self._step_count += 1
        end_probability = float(end_probability[0])
        terminated = end_probability > self.end_threshold
        truncated = self.max_episode_steps is not None and self._step_count >= self.max_episode_steps
        if self.render_mode == "human":
            self.render()
        info = {"predicted_end_probability": end_probability, "step": self._step_count}
        return self._frame, float(reward[0]), terminated, truncated, info

    def render(self):
        if self._frame is None:
            raise RuntimeError("WorldModelEnv.render() was called before reset(); call env.reset() first")
        if self.render_mode == "rgb_array":
            return self._frame.copy()
        if self.render_mode == "human":
            self._window.show(self._frame)
        return None

    def close(self):
        self.context_source.close()
        self._window.close()
