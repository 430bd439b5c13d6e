"""Drift: long free-running play, a player reading the generated frames as a person at the keyboard
would, with the real game beside it under the same keys; checked for what must never change: the
maze's walls, a single Pacman, the ghosts, and eaten pellets staying eaten."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

import envs
from worldmodel.evaluate.episodes import Context, item_generators, restore_game
from worldmodel.evaluate.game_metrics import pacman_tile_count, pellet_reappearances, wall_agreement

GIF_EVERY = 10  # steps between the frames kept for the drift GIF


@torch.no_grad()
def drift(
    model, contexts: list[Context], steps: int, seed: int, players=None, progress: bool = True, **sampling
) -> dict:
    """Plays ``steps`` generated frames from each context in one batch (one rollout per context).

    ``players`` (one ``player(frame) -> action`` per context; the explorer by default) read the
    generated frames. Returns per-step arrays (B, steps): ``wall_agreement`` with the real maze,
    ``pacman_tiles``, ``ghost_count_equal`` (True where the generated frame shows as many ghost
    tiles as the real game under the same keys) and ``real_running`` (the real game had not ended);
    per rollout ``pellet_reappearances``; and ``gif_frames`` of the first rollout every GIF_EVERY steps.
    """
    device = model.device
    batch = len(contexts)
    history = torch.stack([c.latents() for c in contexts]).to(device)  # (B, K, C, h, w)
    past = model.settings.action_window - 1
    past_actions = torch.stack([c.actions(past) for c in contexts]).to(device)  # (B, W-1)
    frames = [c.episode.frames[c.last] for c in contexts]
    maze_walls = [envs.parse_frame(frame).walls for frame in frames]
    players = players or [envs.Explorer(seed * 1_000 + row) for row in range(batch)]
    games = [envs.make_env(model.settings.env_id, frame_size=model.settings.frame_size) for _ in contexts]
    for game, context in zip(games, contexts, strict=True):
        restore_game(game, context)
    running = np.ones(batch, dtype=bool)
    generators = item_generators(seed, batch, device)
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
        actions = torch.tensor(actions, device=device)
        window_actions = torch.cat([past_actions, actions[:, None]], dim=1)  # (B, W)
        next_latents = model.predict_next(history, window_actions, generator=generators, **sampling)
        history = torch.cat([history[:, 1:], next_latents[:, None]], dim=1)
        past_actions = window_actions[:, 1:]
        frames = list(model.decode(next_latents).cpu().numpy())
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
        "wall_agreement": walls,
        "pacman_tiles": pacman_tiles,
        "ghost_count_equal": ghosts_equal,
        "real_running": real_running,
        "pellet_reappearances": np.array([pellet_reappearances(s) for s in states]),
        "gif_frames": np.stack(gif_frames),
    }
