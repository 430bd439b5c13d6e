"""Draws Pacman frames at 64x64 from tile positions, using only the exact colours of the palette.

The board (walls and pellets) is kept as an image and edited when a pellet is eaten; sprites are
pasted with numpy slicing, so a frame costs one copy and a few small assignments.
"""

import numpy as np

from envs.maze import (
    BACKGROUND,
    DOWN,
    FRAME_SIZE,
    FRIGHTENED,
    GHOST_COLOURS,
    LEFT,
    PACMAN,
    PELLET,
    RIGHT,
    TILE,
    UP,
    WALL,
    WALLS,
)


def _sprite(mask: str, colour: tuple[int, int, int]) -> np.ndarray:
    """A TILE x TILE x 3 image from a mask string: 'X' is the colour, '.' the background."""
    rows = mask.split()
    image = np.empty((TILE, TILE, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    for row, line in enumerate(rows):
        for col, ch in enumerate(line):
            if ch == "X":
                image[row, col] = colour
    return image


# Pacman is a disc with a two-pixel mouth on the side it faces, so the heading is visible.
PACMAN_SPRITES = {
    RIGHT: _sprite(".XX. XXX. XXX. .XX.", PACMAN),
    LEFT: _sprite(".XX. .XXX .XXX .XX.", PACMAN),
    UP: _sprite(".... XXXX XXXX .XX.", PACMAN),
    DOWN: _sprite(".XX. XXXX XXXX ....", PACMAN),
}
_GHOST_MASK = ".XX. XXXX XXXX XXXX"
GHOST_SPRITES = tuple(_sprite(_GHOST_MASK, colour) for colour in GHOST_COLOURS)
FRIGHTENED_SPRITE = _sprite(_GHOST_MASK, FRIGHTENED)
PELLET_SPRITE = _sprite(".... .XX. .XX. ....", PELLET)
POWER_PELLET_SPRITE = _sprite(".XX. XXXX XXXX .XX.", PELLET)
EMPTY_SPRITE = _sprite(".... .... .... ....", PELLET)


def draw_board(pellets: np.ndarray, power_pellets: np.ndarray) -> np.ndarray:
    """The maze image with walls and the given pellets, without Pacman or ghosts."""
    board = np.empty((FRAME_SIZE, FRAME_SIZE, 3), dtype=np.uint8)
    board[:] = BACKGROUND
    board[WALLS.repeat(TILE, axis=0).repeat(TILE, axis=1)] = WALL
    for row, col in np.argwhere(pellets):
        paste(board, (row, col), PELLET_SPRITE)
    for row, col in np.argwhere(power_pellets):
        paste(board, (row, col), POWER_PELLET_SPRITE)
    return board


def paste(frame: np.ndarray, tile: tuple[int, int], sprite: np.ndarray) -> None:
    """Overwrites one whole tile of ``frame`` with ``sprite``."""
    y, x = tile[0] * TILE, tile[1] * TILE
    frame[y : y + TILE, x : x + TILE] = sprite
