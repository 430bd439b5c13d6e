"""What play.py shows: the learned game upscaled, the real game beside it, and a panel of numbers,
scaled down to fit the screen; and whether a window can open at all. Draws on off-screen surfaces,
so it runs headless."""

from __future__ import annotations

import os
import sys

import numpy as np
import pygame

PANEL_WIDTH = 230
PANEL_HEIGHT = 330  # the numbers and the key help
STATUS_HEIGHT = 26  # the line of step and score under a headless recording
# What a window's title bar and borders and the desktop's own panels take from the screen.
SCREEN_MARGIN = (32, 96)
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


def usable_screen_size() -> tuple[int, int] | None:
    """The largest window the first screen holds, or None when unknown; after pygame.display.init()."""
    sizes = pygame.display.get_desktop_sizes()
    if not sizes:
        return None
    width, height = sizes[0]
    return width - SCREEN_MARGIN[0], height - SCREEN_MARGIN[1]


class Screen:
    """Composes one shown frame, nearest-neighbour upscaled. In a window: [learned game | real game
    (optional) | panel of numbers and keys]; headless, where no one reads the keys: the game over a
    line of step and score. ``fit_within`` (the screen's usable size) lowers the scale where the
    requested one would not fit, so that the panel stays in view."""

    def __init__(
        self,
        frame_size: int,
        scale: int,
        reserve_real_slot: bool = False,
        fit_within: tuple[int, int] | None = None,
        headless: bool = False,
    ):
        pygame.font.init()
        self.frame_size, self.requested_scale = frame_size, scale
        self.reserve_real_slot = reserve_real_slot  # a recording keeps one frame size throughout
        self.fit_within, self.headless = fit_within, headless
        self.font = pygame.font.Font(None, 24)
        self.small_font = pygame.font.Font(None, 19)

    def scale(self, showing_real: bool) -> int:
        """The requested scale, or the largest smaller one at which the layout fits the screen."""
        for scale in range(self.requested_scale, 0, -1):
            width, height = self._size(showing_real, scale)
            if self.fit_within is None or (width <= self.fit_within[0] and height <= self.fit_within[1]):
                return scale
        return 1

    def size(self, showing_real: bool) -> tuple[int, int]:
        return self._size(showing_real, self.scale(showing_real))

    def _size(self, showing_real: bool, scale: int) -> tuple[int, int]:
        games = 2 if showing_real or self.reserve_real_slot else 1
        game_size = self.frame_size * scale
        if self.headless:
            return games * game_size, game_size + STATUS_HEIGHT
        return games * game_size + PANEL_WIDTH, max(game_size, PANEL_HEIGHT)

    def compose(self, learned: np.ndarray, real: np.ndarray | None, lines: list[str]) -> pygame.Surface:
        """``lines``: the panel's numbers, or headless the status line's parts."""
        showing_real = real is not None
        game_size = self.frame_size * self.scale(showing_real)
        canvas = pygame.Surface(self.size(showing_real))
        canvas.fill(BACKGROUND)
        canvas.blit(self._upscaled(learned, game_size), (0, 0))
        canvas.blit(self.small_font.render("world model", True, DIM), (6, 4))
        x = game_size
        if showing_real:
            canvas.blit(self._upscaled(real, game_size), (x, 0))
            canvas.blit(self.small_font.render("real game", True, DIM), (x + 6, 4))
        if showing_real or self.reserve_real_slot:
            x += game_size
        if self.headless:
            canvas.blit(self.font.render("   ".join(lines), True, TEXT), (6, game_size + 5))
            return canvas
        y = 10
        for line in lines:
            canvas.blit(self.font.render(line, True, TEXT), (x + 12, y))
            y += 26
        y += 10
        for line in HELP:
            canvas.blit(self.small_font.render(line, True, DIM), (x + 12, y))
            y += 20
        return canvas

    def _upscaled(self, frame: np.ndarray, size: int) -> pygame.Surface:
        surface = pygame.surfarray.make_surface(frame.swapaxes(0, 1))
        return pygame.transform.scale(surface, (size, size))  # nearest neighbour
