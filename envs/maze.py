"""The fixed Pacman maze, its tile geometry and the exact colour palette of every frame.

Shared by the game (``envs.pacman``), the renderer (``envs.render``) and the parser (``envs.parse``).
"""

import numpy as np

TILE = 4  # pixels per tile side
GRID = 16  # tiles per maze side
FRAME_SIZE = TILE * GRID  # 64

# Left halves of the rows, mirrored to make the maze symmetric. '#' wall, '.' pellet,
# 'o' power pellet, ' ' walkable without a pellet (ghost pen, tunnel, Pacman's start).
_HALF_ROWS = (
    "########",
    "#......#",
    "#o##.#..",
    "#....#.#",
    "#.##...#",
    "#.##.###",
    "#.......",
    "####.# #",
    "    .#  ",
    "####.###",
    "#...... ",
    "#.##.#.#",
    "#o##.#..",
    "#.##.#.#",
    "#.......",
    "########",
)
LAYOUT = tuple(half + half[::-1] for half in _HALF_ROWS)

WALLS = np.array([[ch == "#" for ch in row] for row in LAYOUT], dtype=bool)
WALKABLE = ~WALLS
START_PELLETS = np.array([[ch == "." for ch in row] for row in LAYOUT], dtype=bool)
START_POWER_PELLETS = np.array([[ch == "o" for ch in row] for row in LAYOUT], dtype=bool)

# Actions double as headings: index into ACTION_MEANINGS.
NOOP, UP, RIGHT, LEFT, DOWN = range(5)
ACTION_MEANINGS = ("NOOP", "UP", "RIGHT", "LEFT", "DOWN")
DELTAS = {UP: (-1, 0), RIGHT: (0, 1), LEFT: (0, -1), DOWN: (1, 0)}
REVERSE = {UP: DOWN, DOWN: UP, LEFT: RIGHT, RIGHT: LEFT}

PACMAN_START = (10, 7)
PACMAN_START_HEADING = LEFT
PEN = frozenset({(8, 6), (8, 7), (8, 8), (8, 9), (7, 6), (7, 9)})
PEN_HOME = (8, 7)  # where eaten ghosts reappear


# Tiles Pacman can stand on: the pen is for ghosts only, as in the arcade.
PACMAN_WALKABLE = WALKABLE.copy()
PACMAN_WALKABLE[tuple(np.array(sorted(PEN)).T)] = False


def _neighbours(for_ghosts: bool) -> tuple:
    """table[row][col][heading] -> the tile one step away, or None; the tunnel row wraps around.

    Ghosts may walk inside the pen and out of it, but never back in (eaten ghosts are put there).
    """
    table = []
    for row in range(GRID):
        table_row = []
        for col in range(GRID):
            step = [None] * 5
            for heading, (d_row, d_col) in DELTAS.items():
                target = ((row + d_row) % GRID, (col + d_col) % GRID)
                if for_ghosts:
                    allowed = WALKABLE[target] and ((row, col) in PEN or target not in PEN)
                else:
                    allowed = PACMAN_WALKABLE[target]
                if allowed:
                    step[heading] = target
            table_row.append(tuple(step))
        table.append(tuple(table_row))
    return tuple(table)


PACMAN_NEXT_TILE = _neighbours(for_ghosts=False)
GHOST_NEXT_TILE = _neighbours(for_ghosts=True)

# Palette: every pixel of a frame is exactly one of these colours. Chosen far apart in RGB so
# that blurry generated frames still snap to the right entry.
BACKGROUND = (0, 0, 0)
WALL = (36, 36, 200)
PELLET = (255, 255, 255)
PACMAN = (255, 230, 0)
BLINKY = (230, 0, 0)
PINKY = (255, 120, 200)
INKY = (0, 230, 230)
CLYDE = (255, 140, 60)
FRIGHTENED = (140, 140, 255)
GHOST_COLOURS = (BLINKY, PINKY, INKY, CLYDE)

PALETTE = np.array([BACKGROUND, WALL, PELLET, PACMAN, BLINKY, PINKY, INKY, CLYDE, FRIGHTENED], dtype=np.uint8)
PALETTE_NAMES = ("background", "wall", "pellet", "pacman", "blinky", "pinky", "inky", "clyde", "frightened")
GHOST_PALETTE_INDICES = (4, 5, 6, 7, 8)
