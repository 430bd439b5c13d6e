"""What play.py shows: the learned game upscaled, the real game beside it, and a panel of numbers;
plus the display check and the GIF/MP4 recorder. Draws on off-screen surfaces, so it runs headless."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402  (the prompt must be hidden before the import)

PANEL_WIDTH = 230
BACKGROUND = (16, 16, 24)
TEXT = (230, 230, 230)
DIM = (130, 130, 150)
HELP = (
    "arrows/WASD  move",
    "R reset   P pause",
    "N/space  one step (paused)",
    "[ ]  sampling steps",
    "- =  guidance scale",
    "TAB  real game side by side",
    "Q/ESC  quit",
)


def display_problem() -> str | None:
    """Why no window can open here, or None when one can (SDL's dummy driver counts as one)."""
    if os.environ.get("SDL_VIDEODRIVER") == "dummy":
        return None
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no display found (DISPLAY and WAYLAND_DISPLAY are unset)"
    try:
        pygame.display.init()
    except pygame.error as error:
        return f"no display could be opened ({error})"
    return None


class Screen:
    """Composes one shown frame: [learned game | real game (optional) | panel], nearest-neighbour upscaled."""

    def __init__(self, frame_size: int, scale: int, reserve_real_slot: bool = False):
        pygame.font.init()
        self.game_size = frame_size * scale
        self.reserve_real_slot = reserve_real_slot  # a recording keeps one frame size throughout
        self.font = pygame.font.Font(None, 24)
        self.small_font = pygame.font.Font(None, 19)

    def size(self, showing_real: bool) -> tuple[int, int]:
        games = 2 if showing_real or self.reserve_real_slot else 1
        return games * self.game_size + PANEL_WIDTH, max(self.game_size, 330)

    def compose(self, learned: np.ndarray, real: np.ndarray | None, lines: list[str]) -> pygame.Surface:
        canvas = pygame.Surface(self.size(real is not None))
        canvas.fill(BACKGROUND)
        canvas.blit(self._upscaled(learned), (0, 0))
        x = self.game_size
        if real is not None:
            canvas.blit(self._upscaled(real), (x, 0))
            canvas.blit(self.small_font.render("real game", True, DIM), (x + 6, 4))
        if real is not None or self.reserve_real_slot:
            x += self.game_size
        canvas.blit(self.small_font.render("world model", True, DIM), (6, 4))
        y = 10
        for line in lines:
            canvas.blit(self.font.render(line, True, TEXT), (x + 12, y))
            y += 26
        y += 10
        for line in HELP:
            canvas.blit(self.small_font.render(line, True, DIM), (x + 12, y))
            y += 20
        return canvas

    def _upscaled(self, frame: np.ndarray) -> pygame.Surface:
        surface = pygame.surfarray.make_surface(frame.swapaxes(0, 1))
        return pygame.transform.scale(surface, (self.game_size, self.game_size))  # nearest neighbour


def surface_pixels(surface: pygame.Surface) -> np.ndarray:
    """uint8 (H, W, 3) pixels of a surface, as a video frame."""
    return pygame.surfarray.array3d(surface).swapaxes(0, 1).copy()


def recording_problem(path: Path) -> str | None:
    """Why ``path`` cannot be recorded, or None."""
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        return f"--record {path}: the file must end in .gif or .mp4"
    if suffix == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        return (
            f"--record {path}: MP4 needs imageio-ffmpeg, which is not installed; install the video "
            'extra (pip install -e ".[video]") or record a .gif instead'
        )
    return None


class Recorder:
    """Collects shown frames and writes them as a GIF (imageio with Pillow) or an MP4 (imageio-ffmpeg)."""

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
