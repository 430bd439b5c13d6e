"""What every key would have done: each recorded step replayed in the real game and branched under
all of its keys (a copy of the game per key), the next frames encoded once into a cache beside the
recording's latents. The denoiser learns these frames beside the recorded one (flow.branch_fraction).

Why: a recording shows one key per state, and its players press keys that move Pacman far more
often than keys the maze refuses. A branch shows the game's own answer to the keys not pressed, a
turn into a wall (Pacman goes on) or a heading into one (he stops), at every state of the recording.
"""

from __future__ import annotations

import copy
import functools
import multiprocessing as mp
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import recorder
from recorder.record import make_recording_env
from worldmodel.config import ConfigError
from worldmodel.data import latent_cache_key, read_keyed, write_keyed_arrays
from worldmodel.vae import encode_frames

BRANCH_CACHE_VERSION = 1


class BranchError(ConfigError):
    """A recording whose steps the game does not replay: another game version, or a game whose state
    cannot be copied; flow.branch_fraction cannot be used with it."""


def branch_frames(game, episode: recorder.Episode, path: Path | str = "", index: int = 0) -> np.ndarray:
    """(S, A, H, W, 3) uint8: the next frame of each of the episode's S steps under each of the A keys.

    The episode is replayed from its seed under its recorded keys; the branch under the recorded key
    is that replay's own step, and each replayed frame must equal the recorded one."""
    game.reset(seed=int(episode.seed))
    keys = int(game.action_space.n)
    branches = np.empty((len(episode.actions), keys, *episode.frames.shape[1:]), np.uint8)
    for step, action in enumerate(episode.actions):
        for key in range(keys):
            if key != action:
                branches[step, key] = copy.deepcopy(game).step(key)[0]
        branches[step, action] = game.step(int(action))[0]
        if not np.array_equal(branches[step, action], episode.frames[step + 1]):
            raise BranchError(
                f"{path}: episode {index} does not replay in {game.spec.id if game.spec else 'the game'} at "
                f"step {step} (the frame after the recorded key differs from the recorded one): the file "
                "was recorded with another version of the game or one with hidden randomness; record it "
                "again with this checkout, or train with flow.branch_fraction=0"
            )
    return branches


EPISODES_PER_JOB = 16  # opening the recording costs a third of branching one episode: once per job


def _job_branches(args) -> list[np.ndarray]:
    path, episodes, env_id, frame_size = args
    game = _worker_game(env_id, frame_size)
    with recorder.load(path) as trajectories:
        return [branch_frames(game, trajectories.episode(i), path, i) for i in episodes]


@functools.cache
def _worker_game(env_id: str, frame_size: int):
    """One game per worker process, made on its first episode and reset for each later one."""
    return make_recording_env(env_id, frame_size)


def recording_branches(path: Path, count: int, workers: int = 1) -> Iterator[np.ndarray]:
    """The branch frames of the file's first ``count`` episodes, in order; ``workers`` > 1 replays in
    processes."""
    with recorder.load(path) as trajectories:
        env_id, frame_size = trajectories.env_id, int(trajectories.frame_size[0])
    jobs = [
        (str(path), range(start, min(start + EPISODES_PER_JOB, count)), env_id, frame_size)
        for start in range(0, count, EPISODES_PER_JOB)
    ]
    if workers <= 1:
        for job in jobs:
            yield from _job_branches(job)
        return
    with mp.get_context("spawn").Pool(workers) as pool:
        for branches in pool.imap(_job_branches, jobs):
            yield from branches


@torch.inference_mode()
def encode_distinct(vae, frames: np.ndarray) -> torch.Tensor:
    """The latents of (N, H, W, 3) frames, each distinct frame encoded once: many keys give the same
    next frame (a key into a wall, or the way Pacman already goes), so a step has ~2.6 distinct of 5."""
    first_seen: dict[bytes, int] = {}  # a frame's bytes -> its row among the distinct frames
    inverse = np.array([first_seen.setdefault(frame.tobytes(), len(first_seen)) for frame in frames])
    _, first = np.unique(inverse, return_index=True)  # where each distinct frame first appears
    latents = encode_frames(vae, torch.from_numpy(frames[first]))
    return latents[torch.from_numpy(inverse)]


def build_branch_cache(
    vae,
    data_path: str | Path,
    cache_path: str | Path,
    episodes: int = 0,
    workers: int = 1,
    show_progress: bool = True,
) -> torch.Tensor:
    """(S, A, C, h, w) float16: the scaled latent of the next frame under every key of each step of
    the recording's first ``episodes`` episodes (0: all), in the order of the latent cache's
    ``actions``. Reuses ``cache_path`` when it was made from the same recording, episodes and encoder."""
    data_path, cache_path = Path(data_path), Path(cache_path)
    with recorder.load(data_path) as trajectories:
        count = min(episodes, len(trajectories)) if episodes else len(trajectories)
        steps = int(trajectories.lengths[:count].sum())
    key = {**latent_cache_key(vae, data_path), "branches": BRANCH_CACHE_VERSION, "episodes": count}
    if cache_path.is_file():
        stored = read_keyed(cache_path, key, "branch cache", lambda arrays: arrays["latents"])
        if stored is not None:
            return stored
    latents, done = None, 0
    progress = tqdm(total=steps, desc="branching steps", unit="step", disable=not show_progress)
    for frames in recording_branches(data_path, count, workers):
        encoded = encode_distinct(vae, frames.reshape(-1, *frames.shape[2:]))
        encoded = encoded.reshape(*frames.shape[:2], *encoded.shape[1:]).to("cpu", torch.float16)
        if latents is None:  # sized once the latent shape is known: a full-size copy is never made
            latents = torch.empty((steps, *encoded.shape[1:]), dtype=torch.float16)
        latents[done : done + len(encoded)] = encoded
        done += len(encoded)
        progress.update(len(encoded))
    progress.close()
    write_keyed_arrays({"latents": latents}, cache_path, key)
    return latents
