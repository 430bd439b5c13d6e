"""Training data in latent space: a recorded file encoded once by the autoencoder into a cache,
and random windows of K history latents, the next latent and the action window (W actions, the
one that produces the next latent last)."""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch
from tqdm import tqdm

import recorder
from worldmodel.vae import encode_frames

CACHE_VERSION = 2  # 2: safetensors, where 1 was a torch pickle


@dataclass
class LatentCache:
    latents: torch.Tensor  # (F, C, h, w) every frame of the file, episodes back to back
    actions: torch.Tensor  # (S,) long; actions[s] is taken at step s and produces the step's next frame
    rewards: torch.Tensor  # (S,)
    terminated: torch.Tensor  # (S,) bool
    frame_start: np.ndarray  # (E,) first frame of each episode in ``latents``
    step_start: np.ndarray  # (E,) first step of each episode in ``actions``
    length: np.ndarray  # (E,) steps per episode; an episode has length + 1 frames

    def window_starts(self, episodes, history_length: int) -> np.ndarray:
        """(N, 2) rows of (episode, local frame f0) for every window f0 .. f0+K lying inside an episode."""
        rows = [
            np.stack([np.full(n, e), np.arange(n)], axis=1)
            for e in episodes
            if (n := int(self.length[e]) + 1 - history_length) > 0
        ]
        return np.concatenate(rows) if rows else np.zeros((0, 2), dtype=np.int64)

    def transitions(self, episodes) -> np.ndarray:
        """(N, 2) rows of (episode, step) for every step of these episodes."""
        return np.concatenate(
            [np.stack([np.full(int(self.length[e]), e), np.arange(self.length[e])], 1) for e in episodes]
        )

    def history_batch(self, rows: np.ndarray, history_length: int, action_window: int | None = None):
        """History latents (B, K, C, h, w), next latent (B, C, h, w) and the action window (B, W) for rows.

        ``actions[:, -1]`` produces the next frame and ``actions[:, -1 - j]`` produced the frame j
        steps before it; frames at or before an episode's reset count as produced by RESET_ACTION
        (no key). W is ``action_window``, K + 1 when None.
        """
        window_length = action_window or history_length + 1
        episodes, f0 = rows[:, 0], rows[:, 1]
        offsets = np.arange(history_length + 1)
        frame_index = self.frame_start[episodes][:, None] + f0[:, None] + offsets  # (B, K+1)
        window = self.latents[torch.from_numpy(frame_index)]  # (B, K+1, C, h, w)
        local_frame = f0[:, None] + history_length + np.arange(1 - window_length, 1)  # (B, W)
        step_index = self.step_start[episodes][:, None] + local_frame - 1
        actions = self.actions[torch.from_numpy(np.maximum(step_index, 0))]
        actions[torch.from_numpy(local_frame <= 0)] = recorder.RESET_ACTION
        return window[:, :-1], window[:, -1], actions

    def transition_batch(self, rows: np.ndarray):
        """Latents before and after each step (B, C, h, w) x2, its action, reward and termination."""
        episodes, steps = rows[:, 0], rows[:, 1]
        frame = torch.from_numpy(self.frame_start[episodes] + steps)
        step = torch.from_numpy(self.step_start[episodes] + steps)
        return (
            self.latents[frame],
            self.latents[frame + 1],
            self.actions[step],
            self.rewards[step],
            self.terminated[step],
        )


def file_fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{int(stat.st_mtime)}"


def module_fingerprint(module: torch.nn.Module) -> str:
    digest = hashlib.sha1()
    for tensor in module.state_dict().values():
        digest.update(tensor.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()


def latent_cache_key(vae, data_path: Path) -> dict:
    """What the cached latents depend on: the recording, the encoder and the latent scaling factor.
    The decoder is left out, so a student with a slimmer decoder reads its teacher's cache."""
    encoder = f"{module_fingerprint(vae.encoder)}*{float(vae.config.scaling_factor)!r}"
    return {"version": CACHE_VERSION, "data": file_fingerprint(data_path), "encoder": encoder}


def build_latent_cache(
    vae, data_path: str | Path, cache_path: str | Path, show_progress: bool = True
) -> LatentCache:
    """Encodes every frame of ``data_path`` once; reuses ``cache_path`` if it was made from the same
    file, encoder and scaling factor."""
    data_path, cache_path = Path(data_path), Path(cache_path)
    key = latent_cache_key(vae, data_path)
    if cache_path.is_file():
        cache = read_latent_cache(cache_path, key)
        if cache is not None:
            return cache
    with recorder.load(data_path) as trajectories:
        latents, actions, rewards, terminated, length = [], [], [], [], []
        for index in tqdm(
            range(len(trajectories)), desc="encoding frames", unit="ep", disable=not show_progress
        ):
            episode = trajectories.episode(index)
            latents.append(encode_frames(vae, torch.from_numpy(episode.frames)).cpu())
            actions.append(torch.from_numpy(episode.actions).long())
            rewards.append(torch.from_numpy(episode.rewards).float())
            terminated.append(torch.from_numpy(episode.terminated).bool())
            length.append(len(episode.actions))
    length = np.asarray(length, dtype=np.int64)
    cache = LatentCache(
        # Contiguous, as read back from the file: the autoencoder's output is channels-last, and the
        # loss's randn_like(target) fills memory in order, so a resumed run must see the same layout.
        latents=torch.cat(latents).contiguous(),
        actions=torch.cat(actions),
        rewards=torch.cat(rewards),
        terminated=torch.cat(terminated),
        frame_start=np.concatenate([[0], np.cumsum(length + 1)[:-1]]).astype(np.int64),
        step_start=np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64),
        length=length,
    )
    write_latent_cache(cache, cache_path, key)
    return cache


# The cache holds arrays only (safetensors): reading it cannot run code, whoever wrote the file.
def write_latent_cache(cache: LatentCache, path: Path, key: dict) -> None:
    arrays = {
        name: torch.from_numpy(value) if isinstance(value, np.ndarray) else value
        for name, value in cache.__dict__.items()
    }
    write_keyed_arrays(arrays, path, key)


def write_keyed_arrays(arrays: dict[str, torch.Tensor], path: Path, key: dict) -> None:
    """Tensors saved as safetensors with ``key`` (what they were made from) in the metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    arrays = {name: value.contiguous() for name, value in arrays.items()}
    safetensors.torch.save_file(arrays, temporary, metadata={"key": json.dumps(key)})
    temporary.replace(path)  # a kill mid-save never leaves a half-written cache behind


def read_keyed(path: Path, key: dict, what: str, build=dict):
    """``build(tensors)`` of the file at ``path`` if it was made with ``key``; None (to rebuild it) if
    not, with a warning when the file is not such a ``what`` at all. Nothing in the file is executed."""
    try:
        with safetensors.safe_open(path, "pt") as stored:
            if json.loads((stored.metadata() or {}).get("key", "null")) != key:
                return None  # made from another file or autoencoder: rebuilt silently, as expected
            return build({name: stored.get_tensor(name) for name in stored.keys()})  # noqa: SIM118
    except (safetensors.SafetensorError, OSError, ValueError, TypeError, KeyError) as error:
        warnings.warn(
            f"{path} is not a {what} this version wrote ({type(error).__name__}: {error}); it was "
            "not loaded and nothing in it ran. Rebuilding it from the recording in its place",
            stacklevel=3,
        )
        return None


def read_latent_cache(path: Path, key: dict) -> LatentCache | None:
    """The cache at ``path`` if it was made with ``key``; None (to rebuild it) if not, with a warning
    when the file is not a latent cache at all. Nothing in the file is executed."""
    numpy_fields = ("frame_start", "step_start", "length")

    def build(arrays):
        return LatentCache(**{n: arrays[n].numpy() if n in numpy_fields else arrays[n] for n in arrays})

    return read_keyed(path, key, "latent cache", build)
