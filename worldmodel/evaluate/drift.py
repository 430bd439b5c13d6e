"""Drift: long free-running play, a player reading the generated frames as a person at the keyboard
would, with the real game beside it under the same keys, both starting again where the learned game
ends an episode; checked for what must never change: the maze's walls, a single Pacman, the ghosts,
and eaten pellets staying eaten."""

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
    restarts: list[EpisodeStart] | None = None,
) -> dict:
    """Plays ``steps`` generated frames from each context in one batch (one rollout per context).

    ``players`` (one ``player(frame) -> action`` per context; the explorer by default) read the
    generated frames. When the learned game ends its episode (its end head, as the env's
    ``terminated``), the rollout goes on from the next start of ``restarts`` (``contexts`` by default)
    and the real game with it, as a player's reset would: our Pacman has one life, so frames past an
    end are no part of the game.

    Returns per-step arrays (B, steps): ``wall_agreement`` with the real maze, ``pacman_tiles``,
    ``real_pacman_tiles`` (the real game's, where it runs), ``ghost_count_equal`` (True where the
    generated frame shows as many ghost tiles as the real game under the same keys) and
    ``real_running``; per rollout ``pellet_reappearances`` (summed over its episodes), ``learned_ends``
    and ``real_ends``; and ``gif_frames`` of the first rollout every GIF_EVERY steps.
    """
    batch, window = len(contexts), model.settings.action_window
    restarts = restarts or contexts
    learned = LatentGames(model, batch)
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
    real_pacman_tiles = np.zeros((batch, steps), dtype=np.int64)
    ghosts_equal = np.zeros((batch, steps), dtype=bool)
    real_running = np.zeros((batch, steps), dtype=bool)
    learned_ends, real_ends = np.zeros(batch, dtype=np.int64), np.zeros(batch, dtype=np.int64)
    pellets_back = np.zeros(batch, dtype=np.int64)
    states = [[] for _ in range(batch)]  # the current episode's parsed frames, per rollout
    gif_frames, started = [], 0
    for step in tqdm(range(steps), desc="drift", unit="step", leave=False, disable=not progress):
        actions = [int(player(frame)) for player, frame in zip(players, frames, strict=True)]
        real_frames = [None] * batch
        for row in np.flatnonzero(running):
            real_frames[row], _, terminated, truncated, _ = games[row].step(actions[row])
            running[row] = not (terminated or truncated)
            real_ends[row] += int(terminated)
            real_running[row, step] = True
            real_pacman_tiles[row, step] = pacman_tile_count(real_frames[row])
        result = learned.step(torch.tensor(actions), sampler)
        frames = list(result.frames)
        for row, frame in enumerate(frames):
            state = envs.parse_frame(frame)
            states[row].append(state)
            walls[row, step] = wall_agreement(state, maze_walls[row])
            pacman_tiles[row, step] = pacman_tile_count(frame)
            if real_frames[row] is not None:
                ghosts_equal[row, step] = len(state.ghosts) == len(envs.parse_frame(real_frames[row]).ghosts)
        if step % GIF_EVERY == 0:
            gif_frames.append(frames[0])
        for row in np.flatnonzero(result.end_probability > model.end_threshold):
            learned_ends[row] += 1
            pellets_back[row] += pellet_reappearances(states[row])
            context = restarts[started % len(restarts)]
            started += 1
            learned.start([row], [context.context(window)], sampling_seeds(seed + started, 1))
            restore_game(games[row], context)
            running[row], states[row] = True, []
            frames[row] = context.episode.frames[context.last]
            maze_walls[row] = envs.parse_frame(frames[row]).walls
            if hasattr(players[row], "reset"):
                players[row].reset(seed * 1_000_003 + started)
    for game in games:
        game.close()
    pellets_back += np.array([pellet_reappearances(s) for s in states])
    return {
        WALLS: walls,
        "pacman_tiles": pacman_tiles,
        "real_pacman_tiles": real_pacman_tiles,
        "ghost_count_equal": ghosts_equal,
        "real_running": real_running,
        PELLETS_BACK: pellets_back,
        "learned_ends": learned_ends,
        "real_ends": real_ends,
        "gif_frames": np.stack(gif_frames),
    }
