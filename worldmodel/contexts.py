"""Where an episode of the learned game starts: a ``Context`` (K real frames, the actions before them,
and how to bring the real game to the same point) drawn from the real game or from a recorded file."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import gymnasium
import numpy as np
import torch

import envs
import recorder
from worldmodel.model import WorldModelSettings


@dataclass
class Context:
    """K real frames an episode starts from, and how to reach the same point in the real game."""

    frames: np.ndarray  # (K, H, W, 3) uint8
    # (W-1,) int64: the actions before the next step, as the model's action window reads them; the
    # last K produced ``frames``; NOOP for a reset frame and before it
    actions: np.ndarray
    seed: int | None  # the real game's reset seed for this episode (None when unknown)
    replay_actions: np.ndarray | None  # actions that, after reset(seed=seed), lead to frames[-1]
    latents: torch.Tensor | None = None  # (K, C, h, w) the frames already encoded, when the caller has them


def episode_context(
    frames: np.ndarray,
    actions: np.ndarray,
    seed: int | None,
    start: int,
    history_length: int,
    action_window: int,
    latents: torch.Tensor | None = None,
) -> Context:
    """The context of the K frames from ``start`` of a real episode: its frames (T+1, H, W, 3), the
    reset frame first, and the T actions played from ``reset(seed=seed)``."""
    last = start + history_length - 1
    return Context(
        frames=frames[start : last + 1],
        actions=recorder.action_window(recorder.producing_actions(actions), last + 1, action_window - 1),
        seed=seed,
        replay_actions=np.asarray(actions[:last], dtype=np.int64),
        latents=latents,
    )


class RealGameContext:
    """Contexts from the real game: a seeded reset, then K-1 steps of a seeded scripted player."""

    def __init__(self, settings: WorldModelSettings):
        self.settings = settings
        self._game: gymnasium.Env | None = None  # made on first use, kept for later episodes
        # The game's explorer where it has one (Pacman's reads its frames), else uniform random actions.
        self._spec = envs.game_spec(settings.env_id, settings.action_meanings)

    def draw(self, rng: np.random.Generator) -> Context:
        if self._game is None:
            self._game = envs.make_env(self.settings.env_id, frame_size=self.settings.frame_size)
        seed, policy_seed = (int(value) for value in rng.integers(2**31, size=2))
        player = self._spec.scripted_player(policy_seed)
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
        self.history_length, self.action_window = settings.history_length, settings.action_window
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
        return episode_context(
            episode.frames, episode.actions, int(episode.seed), start, k, self.action_window
        )

    def close(self) -> None:
        self.trajectories.close()


class ContextPool:
    """Contexts from real episodes handed to it while the env runs, e.g. real-game play of the agent
    being trained, as DIAMOND restarts imagination from the agent's own real frames. Draws from the
    newest ``capacity`` contexts; from the real game's start until an episode has been added."""

    def __init__(self, settings: WorldModelSettings, capacity: int = 20_000):
        self.history_length, self.action_window = settings.history_length, settings.action_window
        self.contexts: deque[Context] = deque(maxlen=capacity)
        self.episodes = 0
        self.fallback = RealGameContext(settings)

    def add_episode(self, frames: np.ndarray, actions: np.ndarray, seed: int | None) -> None:
        """A real episode: its frames (T+1, H, W, 3), the reset frame first, and the T actions played
        from ``reset(seed=seed)``; every K consecutive frames of it become a context."""
        k = self.history_length
        for start in range(len(frames) - k + 1):
            self.contexts.append(episode_context(frames, actions, seed, start, k, self.action_window))
        self.episodes += 1

    def draw(self, rng: np.random.Generator) -> Context:
        if not self.contexts:
            return self.fallback.draw(rng)
        return self.contexts[int(rng.integers(len(self.contexts)))]

    def close(self) -> None:
        self.fallback.close()


def make_context_source(context, settings: WorldModelSettings):
    """Where episodes start: "real" (the real game's start), the path of a recorded file, or an object
    that draws contexts itself (``draw(rng) -> Context``, ``close()``), such as a ContextPool."""
    if hasattr(context, "draw"):
        return context
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
    replay = None if context.replay_actions is None else context.replay_actions.copy()
    return {"real_game_seed": context.seed, "real_game_actions": replay}
