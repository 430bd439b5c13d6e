"""The one pygame window both games use for render_mode="human": a frame upscaled with
nearest-neighbour sampling, paced at the game's frames per second."""

from __future__ import annotations

import numpy as np


class FrameWindow:
    def __init__(self, title: str, scale: int, fps: float):
        self.title, self.scale, self.fps = title, scale, fps
        self._screen = None
        self._clock = None

    def show(self, frame: np.ndarray) -> None:
        import pygame  # only human rendering needs pygame

        height, width = frame.shape[:2]
        size = (width * self.scale, height * self.scale)
        if self._screen is None:
            # The display alone: pygame.init() would start audio too, which the games never use and
            # which prints a screenful of ALSA errors on a machine with no sound card.
            pygame.display.init()
            pygame.display.set_caption(self.title)
            self._screen = pygame.display.set_mode(size)
            self._clock = pygame.time.Clock()
        pygame.event.pump()
        surface = pygame.surfarray.make_surface(frame.swapaxes(0, 1))
        self._screen.blit(pygame.transform.scale(surface, size), (0, 0))  # scale() is nearest neighbour
        pygame.display.flip()
        self._clock.tick(self.fps)

    def close(self) -> None:
        if self._screen is not None:
            import pygame

            pygame.display.quit()
            self._screen = None
