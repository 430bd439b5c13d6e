"""play.py's window and recordings: the screen it composes (screen.py) and the GIF/MP4 file of a
play session (recording.py). Pygame is imported here first, with its start-up banner hidden."""

import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402  (the banner must be hidden before the import)

from playui.recording import SessionRecorder, recording_problem, surface_pixels  # noqa: E402
from playui.screen import (  # noqa: E402
    PANEL_HEIGHT,
    PANEL_WIDTH,
    SCREEN_MARGIN,
    STATUS_HEIGHT,
    Screen,
    display_problem,
    usable_screen_size,
)

__all__ = [
    "PANEL_HEIGHT",
    "PANEL_WIDTH",
    "SCREEN_MARGIN",
    "STATUS_HEIGHT",
    "Screen",
    "SessionRecorder",
    "display_problem",
    "pygame",
    "recording_problem",
    "surface_pixels",
    "usable_screen_size",
]
