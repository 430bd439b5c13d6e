"""Frames made into pictures people look at: upscaled, and written as GIFs."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

SAMPLE_SCALE = 4  # frames are 64x64; pictures are upscaled so a person can see them


def upscale(frames: np.ndarray, scale: int = SAMPLE_SCALE) -> np.ndarray:
    return frames.repeat(scale, axis=-3).repeat(scale, axis=-2)


def save_gif(path: Path, frames: np.ndarray, fps: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, list(frames), duration=1000 / fps, loop=0)
