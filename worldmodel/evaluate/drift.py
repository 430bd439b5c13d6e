"""Drift: long free-running play, a player reading the generated frames as a person at the keyboard
would, with the real game beside it under the same keys; checked for what must never change: the
maze's walls, a single Pacman, the ghosts, and eaten pellets staying eaten."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

import envs
from worldmodel.evaluate.episodes import EpisodeStart, restore_game, sampling_seeds
from worldmodel.evaluate.game_metrics import pacman_tile_count, pellet_reappearances, wall_agreement
from worldmodel.evaluate.names import PELLETS_BACK, WALLS
from worldmodel.game_step import LatentGames
from worldmodel.sampler import Sampler

GIF_EVERY = 10  # steps between the frames kept for the drift GIF


@torch.no_grad()
def drift(
    model,
    contexts: list[EpisodeStart],
    steps: int,
    seed: int,
    players=None,
    progress: bool = True,
    sampler: Sampler | None = None,
) -> dict:
    """Plays ``steps`` generated frames from each context in one batch (one rollout per context).

    ``players`` (one ``player(frame) -> action`` per context; the explorer by default) read the
    generated frames. Returns per-step arrays (B, steps): ``wall_agreement`` with the real maze,
    ``pacman_tiles``, ``ghost_count_equal`` (True where the generated frame shows as many ghost
    tiles as the real game under the same keys) and ``real_running`` (the real game had not ended);
    per rollout ``pellet_reappearances``; and ``gif_frames`` of the first rollout every GIF_EVERY steps.
    """
    batch = len(contexts)
    learned = LatentGames(model, batch)
    window = model.settings.action_window
    learned.start(range(batch), [c.context(window) for c in contexts], sampling_seeds(seed, batch))
    frames = [c.episode.frames[c.last] for c in contexts]
    maze_walls = [envs.parse_frame(frame).walls for frame in frames]
    players = players or [envs.Explorer(seed * 1_000 + row) for row in range(batch)]
    games = [envs.make_env(model.settings.env_id, frame_size=model.settings.frame_size) for _ in contexts]
    for game, context in zip(games, contexts, strict=True):
        restore_game(game, context)
    running = np.ones(batch, dtype=bool)
    walls = np.zeros((batch, steps))
    pacman_tiles = np.zeros((batch, steps), dtype=np.int64)
    ghosts_equal = np.zeros((batch, steps), dtype=bool)
    real_running = np.zeros((batch, steps), dtype=bool)
    states = [[] for _ in range(batch)]
    gif_frames = []
    for step in tqdm(range(steps), desc="drift", unit="step", leave=False, disable=not progress):
        actions = [int(player(frame)) for player, frame in zip(players, frames, strict=True)]
        real_frames = [None] * batch
        for row in np.flatnonzero(running):
            real_frames[row], _, terminated, truncated, _ = games[row].step(actions[row])
            running[row] = not (terminated or truncated)
            real_running[row, step] = True
        frames = list(learned.step(torch.tensor(actions), sampler, rewards=False).frames)
        for row, frame in enumerate(frames):
            state = envs.parse_frame(frame)
            states[row].append(state)
            walls[row, step] = wall_agreement(state, maze_walls[row])
            pacman_tiles[row, step] = pacman_tile_count(frame)
            if real_frames[row] is not None:
                ghosts_equal[row, step] = len(state.ghosts) == len(envs.parse_frame(real_frames[row]).ghosts)
        if step % GIF_EVERY == 0:
            gif_frames.append(frames[0])
    for game in games:
        game.close()
    return {
        WALLS: walls,
        "pacman_tiles": pacman_tiles,
        "ghost_count_equal": ghosts_equal,
        "real_running": real_running,
        PELLETS_BACK: np.array([pellet_reappearances(s) for s in states]),
        "gif_frames": np.stack(gif_frames),
    }
