"""Held-out episodes as the evaluation sees them: frames, actions and their latents, the windows and
contexts cut from them, and the real game restored to any of their frames for fresh action sequences."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import recorder
from worldmodel.contexts import Context, episode_context


class EvaluationError(ValueError):
    """Data or settings that cannot be evaluated; the message names the problem and the fix."""


@dataclass
class HeldOutEpisode:
    index: int  # episode number in the file
    seed: int  # the real game's reset seed
    frames: np.ndarray  # (T+1, H, W, 3) uint8, the reset frame first
    actions: np.ndarray  # (T,) actions[t] produced frames[t+1]
    rewards: np.ndarray  # (T,)
    terminated: np.ndarray  # (T,) bool
    latents: torch.Tensor  # (T+1, C, h, w)

    @classmethod
    def of(cls, index: int, episode, latents: torch.Tensor) -> HeldOutEpisode:
        """Episode ``index`` of a recording (``recorder.load(...).episode(index)``) and its latents."""
        return cls(
            index=index,
            seed=episode.seed,
            frames=episode.frames,
            actions=episode.actions.astype(np.int64),
            rewards=episode.rewards,
            terminated=episode.terminated.astype(bool),
            latents=latents,
        )

    def produced_by(self) -> np.ndarray:
        """(T+1,) the action that produced each frame, NOOP for the reset frame."""
        return recorder.producing_actions(self.actions)


@dataclass
class EpisodeStart:
    """A place in a held-out episode to start the learned game from: its K frames from ``start`` on."""

    episode: HeldOutEpisode
    start: int  # first context frame
    history_length: int

    @property
    def last(self) -> int:
        return self.start + self.history_length - 1

    def latents(self) -> torch.Tensor:
        return self.episode.latents[self.start : self.last + 1]  # (K, C, h, w)

    def actions(self, length: int | None = None) -> torch.Tensor:
        """(length,) the actions that produced the frames up to the last context frame (K by default);
        RESET_ACTION before the episode's start. The model reads its action window less one."""
        produced_by = self.episode.produced_by()
        return torch.from_numpy(
            recorder.action_window(produced_by, self.last + 1, length or self.history_length)
        )

    def context(self, action_window: int) -> Context:
        """The learned game's start here, for a model reading ``action_window`` actions."""
        episode = self.episode
        return episode_context(
            episode.frames, episode.actions, episode.seed, self.start, self.history_length, action_window,
            self.latents(),
        )  # fmt: skip

    def recorded_future(self, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """The recorded actions from the context on and the frames they produced (at most ``horizon``)."""
        actions = self.episode.actions[self.last : self.last + horizon]
        return actions.astype(np.int64), self.episode.frames[self.last + 1 : self.last + 1 + len(actions)]


def load_held_out(model, data_path: str | Path, count: int) -> list[HeldOutEpisode]:
    """The first ``count`` episodes of the file long enough for a context, encoded by the model."""
    settings = model.settings
    with recorder.load(data_path) as trajectories:
        problems = settings.recording_mismatches(trajectories)
        if problems:
            raise EvaluationError(
                f"{data_path} does not fit this checkpoint: {'; '.join(problems)}; pass held-out episodes "
                f"recorded with `python -m recorder --env {settings.env_id} --frame-size {settings.frame_size}`"
            )
        usable = np.flatnonzero(trajectories.lengths >= settings.history_length)[:count]
        if len(usable) == 0:
            raise EvaluationError(
                f"{data_path} has no episode longer than the model's {settings.history_length}-frame history; "
                "record longer episodes"
            )
        episodes = []
        for index in usable:
            episode = trajectories.episode(int(index))
            latents = model.encode(torch.from_numpy(episode.frames)).cpu()
            episodes.append(HeldOutEpisode.of(int(index), episode, latents))
    return episodes


def choose_windows(episodes, history_length: int, count: int, rng: np.random.Generator) -> list[EpisodeStart]:
    """``count`` teacher-forcing windows (K frames and the next), drawn without replacement."""
    rows = [
        (e, start)
        for e, episode in enumerate(episodes)
        for start in range(len(episode.actions) + 1 - history_length)
    ]
    chosen = rng.choice(len(rows), size=min(count, len(rows)), replace=False)
    return [EpisodeStart(episodes[rows[i][0]], rows[i][1], history_length) for i in sorted(chosen)]


def choose_contexts(
    episodes, history_length: int, horizon: int, rng: np.random.Generator, per_episode: int = 1
) -> list[EpisodeStart]:
    """``per_episode`` contexts from each episode (episode by episode), each placed so that ``horizon``
    recorded frames follow it where the episode allows."""
    contexts = []
    for _ in range(per_episode):
        for episode in episodes:
            latest = len(episode.frames) - history_length - horizon  # the last start with a full horizon
            start = int(rng.integers(latest + 1)) if latest > 0 else 0
            contexts.append(EpisodeStart(episode, start, history_length))
    return contexts


def restore_game(game, context: EpisodeStart) -> tuple[np.ndarray, bool]:
    """Puts the real game at the context's last frame: reset with the episode's seed, replay its actions.

    Returns that frame and whether it equals the recorded one (the game is deterministic given its
    seed, so a mismatch means the file was recorded by another version of the game).
    """
    frame, _ = game.reset(seed=context.episode.seed)
    for action in context.episode.actions[: context.last]:
        frame, *_ = game.step(int(action))
    return frame, bool(np.array_equal(frame, context.episode.frames[context.last]))


def sampling_seeds(seed: int, count: int) -> list[int]:
    """One sampling seed per rollout or window, so an item's samples do not depend on its batch."""
    return [seed * 100_003 + item for item in range(count)]
