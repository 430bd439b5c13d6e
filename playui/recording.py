"""Recording a play session: the frames shown, written as a GIF or an MP4 file, and the check that
the file can be written before anything is played."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pygame


def surface_pixels(surface: pygame.Surface) -> np.ndarray:
    """uint8 (H, W, 3) pixels of a surface, as a video frame."""
    return pygame.surfarray.array3d(surface).swapaxes(0, 1).copy()


def recording_problem(path: Path) -> str | None:
    """Why ``path`` cannot be recorded, or None."""
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        return f"--record {path}: the file must end in .gif or .mp4"
    folder = path.resolve().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        return f"--record {path}: cannot write into {folder} (missing or not writable); choose another path"
    if suffix == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        return (
            f"--record {path}: MP4 needs imageio-ffmpeg, which is not installed; install the video "
            'extra (pip install -e ".[video]") or record a .gif instead'
        )
    return None


class SessionRecorder:
    """Collects the frames shown in a play session and writes them as a GIF (imageio with Pillow) or
    an MP4 (imageio-ffmpeg)."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps = path, fps
        self.frames: list[np.ndarray] = []

    def add(self, surface: pygame.Surface) -> None:
        self.frames.append(surface_pixels(surface))

    def save(self) -> None:
        import imageio.v2 as imageio

        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.suffix.lower() == ".gif":
            imageio.mimsave(self.path, self.frames, duration=1000 / self.fps, loop=0)
        else:
            imageio.mimsave(self.path, self.frames, fps=self.fps, macro_block_size=1)
