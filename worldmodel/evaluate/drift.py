"""Drift: long free-running play driven by the explorer reading the generated frames, checked for
what must never change: the maze's walls, a single Pacman, and eaten pellets staying eaten."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

import envs
from worldmodel.evaluate.episodes import Context, item_generators
from worldmodel.evaluate.game_metrics import pacman_tile_count, pellet_reappearances, wall_agreement

GIF_EVERY = 10  # steps between the frames kept for the drift GIF


@torch.no_grad()
def drift(model, contexts: list[Context], steps: int, seed: int, progress: bool = True, **sampling) -> dict:
    """Plays ``steps`` generated frames from each context in one batch (one rollout per context).

    Returns per-step arrays (B, steps): ``wall_agreement`` with the real maze and ``pacman_tiles``;
    per rollout ``pellet_reappearances``; and ``gif_frames`` of the first rollout every GIF_EVERY steps.
    """
    device = model.device
    batch = len(contexts)
    history = torch.stack([c.latents() for c in contexts]).to(device)  # (B, K, C, h, w)
    past = model.settings.action_window - 1
    past_actions = torch.stack([c.actions(past) for c in contexts]).to(device)  # (B, W-1)
    frames = [c.episode.frames[c.last] for c in contexts]
    maze_walls = [envs.parse_frame(frame).walls for frame in frames]
    explorers = [envs.Explorer(seed * 1_000 + row) for row in range(batch)]
    generators = item_generators(seed, batch, device)
    walls = np.zeros((batch, steps))
    pacman_tiles = np.zeros((batch, steps), dtype=np.int64)
    states = [[] for _ in range(batch)]
    gif_frames = []
    for step in tqdm(range(steps), desc="drift", unit="step", leave=False, disable=not progress):
        actions = torch.tensor([explorer(frame) for explorer, frame in zip(explorers, frames, strict=True)])
        window_actions = torch.cat([past_actions, actions[:, None].to(device)], dim=1)  # (B, W)
        next_latents = model.predict_next(history, window_actions, generator=generators, **sampling)
        history = torch.cat([history[:, 1:], next_latents[:, None]], dim=1)
        past_actions = window_actions[:, 1:]
        frames = list(model.decode(next_latents).cpu().numpy())
        for row, frame in enumerate(frames):
            state = envs.parse_frame(frame)
            states[row].append(state)
            walls[row, step] = wall_agreement(state, maze_walls[row])
            pacman_tiles[row, step] = pacman_tile_count(frame)
        if step % GIF_EVERY == 0:
            gif_frames.append(frames[0])
    return {
        "wall_agreement": walls,
        "pacman_tiles": pacman_tiles,
        "pellet_reappearances": np.array([pellet_reappearances(s) for s in states]),
        "gif_frames": np.stack(gif_frames),
    }
