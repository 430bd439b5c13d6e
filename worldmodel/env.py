"""The learned game as a Gymnasium environment: a checkpoint's world model samples each next frame,
its reward and the episode's end from the last K latents and actions, starting from K real frames."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import gymnasium
import numpy as np
import torch
from gymnasium import spaces

from envs.window import FrameWindow
from worldmodel.checkpoint import CheckpointError
from worldmodel.contexts import Context, begin_episode, make_context_source, real_game_start
from worldmodel.game_step import LatentGames
from worldmodel.model import WorldModel
from worldmodel.onnx_runtime import check_runtime, on_onnx_runtime
from worldmodel.sampler import Sampler

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


# ---- what both environments share --------------------------------------------------------------------
@dataclass
class GameOptions:
    """The keywords both envs take, besides their own (``render_mode``; ``num_envs`` for the batched env).

    ``context`` is "real" (episodes start from the real game), the path of a recorded trajectory
    file, or an object that draws the contexts itself (``worldmodel.contexts.ContextPool``). The
    sampler is the checkpoint's unless ``sampler`` (a kind such as "flow", or a ``Sampler``) or any
    of its settings is given; ``env.sampler`` may be replaced between steps.
    ``max_episode_steps`` truncates episodes; None sets no limit, as ``gymnasium.make`` adds its own.
    ``threads``: torch's CPU threads (see ``use_threads``). ``runtime``: "torch", or "onnx" to run
    the denoiser and decoder in ONNX Runtime (CPU only; see ``worldmodel.onnx_runtime``).
    ``observation``: "frames" (uint8 H x W x 3, as the real game's) or "latents" (float32 C x h x w,
    the model's own state): then the decoder runs only when a frame is rendered, which an RL learner
    reading latents never needs.
    """

    checkpoint: str | Path | WorldModel | None = None
    context: str | Path | object = "real"  # or a source of contexts such as a ContextPool
    max_episode_steps: int | None = None
    sampling_steps: int | None = None
    guidance_scale: float | None = None
    context_noise: float | None = None
    scheduler: str | None = None
    timestep_shift: float | None = None
    sampler: Sampler | str | None = None
    device: str | torch.device = "cpu"
    end_threshold: float | None = None  # predicted end probability above which an episode ends
    threads: int | None = None
    runtime: str = "torch"
    observation: str = "frames"


OBSERVATIONS = ("frames", "latents")


def game_options(env_name: str, options: dict) -> GameOptions:
    """``options`` as GameOptions; a TypeError naming the unknown keyword and the known ones."""
    known = {f.name for f in fields(GameOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"{env_name} got unknown keywords {unknown}; it takes {sorted(known)}")
    return GameOptions(**options)


def sampler_setting(name: str, kind: type) -> property:
    """An env attribute that reads one setting of the env's sampler, and replaces the sampler to set it."""

    def set_setting(env, value) -> None:
        env.sampler = env.sampler.replace(**{name: kind(value)})

    return property(lambda env: getattr(env.sampler.settings, name), set_setting)


class LearnedGame:
    """The setup both envs share: the model, its spaces, the end threshold, where episodes start, and
    the sampler, which a game may change between steps (play.py's keys do)."""

    sampler: Sampler

    def _set_up(self, options: dict, render_mode: str | None) -> tuple[spaces.Box, spaces.Discrete]:
        """Checks the keywords, loads the model and sets what both envs share; returns one game's
        observation and action spaces."""
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}"
            )
        self.render_mode = render_mode
        options = game_options(type(self).__name__, options)
        use_threads(options.threads, options.device)
        self.model = load_world_model(options.checkpoint, options.device)
        if check_runtime(options.runtime) == "onnx":
            self.model = on_onnx_runtime(self.model, torch.get_num_threads())
        self.settings = self.model.settings
        self.action_meanings = tuple(self.settings.action_meanings)
        steps = options.max_episode_steps
        self.max_episode_steps = None if steps is None else int(steps)
        threshold = options.end_threshold  # the checkpoint's choice by default
        self.end_threshold = self.model.end_threshold if threshold is None else float(threshold)
        sampler = options.sampler
        base = sampler if isinstance(sampler, Sampler) else self.model.sampler
        self.sampler = base.replace(
            kind=sampler if isinstance(sampler, str) else None,
            sampling_steps=options.sampling_steps,
            guidance_scale=options.guidance_scale,
            context_noise=options.context_noise,
            scheduler=options.scheduler,
            timestep_shift=options.timestep_shift,
        )
        if options.observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got {options.observation!r}")
        self.observation = options.observation
        self.context_source = make_context_source(options.context, self.settings)
        s = self.settings
        if self.observation == "latents":
            latent_shape = (s.latent_channels, s.latent_size, s.latent_size)
            observation_space = spaces.Box(-np.inf, np.inf, latent_shape, np.float32)
        else:
            observation_space = spaces.Box(0, 255, (s.frame_size, s.frame_size, 3), np.uint8)
        return observation_space, spaces.Discrete(s.num_actions)

    def _decode(self, latents: torch.Tensor) -> np.ndarray:
        """Frames (N, H, W, 3) uint8 of latents (N, C, h, w): rendering a game that observes latents."""
        with torch.inference_mode():
            return self.model.decode(latents).cpu().numpy()

    # The sampler's most changed settings, readable and settable on the env itself (play.py's keys).
    sampling_steps = sampler_setting("sampling_steps", int)
    guidance_scale = sampler_setting("guidance_scale", float)
    context_noise = sampler_setting("context_noise", float)


# ---- the single environment ----------------------------------------------------------------------------
class WorldModelEnv(LearnedGame, gymnasium.Env):
    """The learned game behind ``reset``/``step``, with the real game's observation and action spaces.

    Takes the keywords of ``GameOptions`` (the checkpoint, where episodes start, the sampler and its
    settings, the device, threads, the end threshold, a step limit) besides its own: ``render_mode``
    and ``window_scale``, the pixels per frame pixel of the "human" window.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 10}

    def __init__(
        self,
        checkpoint: str | Path | WorldModel | None = None,
        render_mode: str | None = None,
        window_scale: int = 8,
        **options,
    ):
        game_spaces = self._set_up({"checkpoint": checkpoint, **options}, render_mode)
        self.observation_space, self.action_space = game_spaces
        self.window_scale = window_scale
        self.context: Context | None = None  # the current episode's start
        self._games = LatentGames(self.model, batch=1)
        self._frame: np.ndarray | None = None  # None while only the latent is known (observation="latents")
        self._latent: torch.Tensor | None = None  # (C, h, w)
        self._step_count = 0
        self._window = FrameWindow("Pacman (world model)", window_scale, self.metadata["render_fps"])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.context, sampling_seed = begin_episode(self.context_source, self.np_random)
        self._games.start([0], [self.context], [sampling_seed])
        self._frame = self.context.frames[-1].copy()
        self._latent = self._games.history_latents[0, -1].clone()
        self._step_count = 0
        if self.render_mode == "human":
            self.render()
        return self._observation(), {"step": 0, **real_game_start(self.context)}

    def _observation(self) -> np.ndarray:
        if self.observation == "latents":
            return self._latent.cpu().numpy().copy()
        return self._frame

    def step(self, action):
        if self.context is None:
            raise RuntimeError("WorldModelEnv.step() was called before reset(); call env.reset() first")
        action = check_action(action, self.action_space.n)
        decode = self.observation == "frames" or self.render_mode == "human"
        step = self._games.step(torch.tensor([action]), self.sampler, decode=decode)
        self._frame = step.frames[0] if decode else None
        self._latent = step.latents[0]
        self._step_count += 1
        end_probability = float(step.end_probability[0])
        terminated = end_probability > self.end_threshold
        truncated = self.max_episode_steps is not None and self._step_count >= self.max_episode_steps
        if self.render_mode == "human":
            self.render()
        info = {"predicted_end_probability": end_probability, "step": self._step_count}
        return self._observation(), float(step.reward[0]), terminated, truncated, info

    def render(self):
        if self._latent is None:
            raise RuntimeError("WorldModelEnv.render() was called before reset(); call env.reset() first")
        if self._frame is None and self.render_mode is not None:
            self._frame = self._decode(self._latent[None])[0]
        if self.render_mode == "rgb_array":
            return self._frame.copy()
        if self.render_mode == "human":
            self._window.show(self._frame)
        return None

    def close(self):
        self.context_source.close()
        self._window.close()
