"""The project's own Pacman as a Gymnasium env: one fixed 16x16-tile maze, four ghosts, one life.

Rewards are plain floats: pellet +1, power pellet +5, eaten frightened ghost +20, nothing else.
An episode terminates when a ghost that is not frightened catches Pacman or when every pellet
(power pellets included) is eaten; ``gymnasium.make("Pacman-v0")`` truncates it after 1000 steps.
Pacman moves one tile per step; a requested turn waits until the maze allows it; NOOP keeps going.
Ghosts move on 2 of every 3 steps (frightened: 1 of 2) and follow the arcade's rules: scatter to
their corners, chase with Blinky/Pinky/Inky/Clyde targets, turn at random while frightened.
"""

import gymnasium
import numpy as np
from gymnasium import spaces

from envs.keymap import keys_to_action
from envs.maze import (
    ACTION_MEANINGS,
    DOWN,
    FRAME_SIZE,
    GHOST_NEXT_TILE,
    GRID,
    LEFT,
    NOOP,
    PACMAN_NEXT_TILE,
    PACMAN_START,
    PACMAN_START_HEADING,
    PEN,
    PEN_HOME,
    REVERSE,
    RIGHT,
    START_PELLETS,
    START_POWER_PELLETS,
    UP,
    WALLS,
)
from envs.parse import PacmanState
from envs.render import (
    EMPTY_SPRITE,
    FRIGHTENED_SPRITE,
    GHOST_SPRITES,
    PACMAN_SPRITES,
    draw_board,
    paste,
)
from envs.window import FrameWindow

PELLET_REWARD = 1.0
POWER_PELLET_REWARD = 5.0
GHOST_REWARD = 20.0

FRIGHTENED_STEPS = 30
SCATTER, CHASE = "scatter", "chase"
# (mode, steps); the last phase lasts forever. The clock pauses while ghosts are frightened.
MODE_SCHEDULE = ((SCATTER, 20), (CHASE, 60), (SCATTER, 20), (CHASE, 60), (SCATTER, 15), (CHASE, None))

# Blinky, Pinky, Inky, Clyde: start tile, start heading, step from which it may move, scatter corner.
GHOST_STARTS = ((6, 7), (8, 7), (8, 8), (8, 6))
GHOST_START_HEADINGS = (LEFT, LEFT, RIGHT, LEFT)
GHOST_RELEASE_STEPS = (0, 0, 10, 20)
SCATTER_TARGETS = ((-2, GRID - 1), (-2, 0), (GRID + 1, GRID - 1), (GRID + 1, 0))
PEN_EXIT_TARGET = (6, 7)
PINKY_LEAD = 2  # tiles ahead of Pacman (4 in the arcade's 28-tile maze)
INKY_LEAD = 1
CLYDE_SHY_DISTANCE = 4  # Clyde chases only while farther than this from Pacman
GHOST_TURN_ORDER = (UP, LEFT, DOWN, RIGHT)  # the arcade's tie-break
HEADING_DELTAS = {UP: (-1, 0), RIGHT: (0, 1), LEFT: (0, -1), DOWN: (1, 0)}


class PacmanEnv(gymnasium.Env):
    """Pacman on a 64x64 frame; see the module docstring for the rules and rewards."""

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 10}
    action_meanings = ACTION_MEANINGS

    def __init__(self, render_mode: str | None = None, window_scale: int = 8):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}."
            )
        self.render_mode = render_mode
        self.window_scale = window_scale
        self.observation_space = spaces.Box(0, 255, (FRAME_SIZE, FRAME_SIZE, 3), np.uint8)
        self.action_space = spaces.Discrete(5)
        self._board = None
        self._frame = None
        self._terminated = False
        self._window = FrameWindow("Pacman", window_scale, self.metadata["render_fps"])

    # 1. episode life cycle
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if options:  # the game has one maze and one start; an option it ignored would mislead the caller
            raise ValueError(f"PacmanEnv.reset() takes no options, got {sorted(options)}; pass options=None.")
        super().reset(seed=seed)
        self._terminated = False
        self._pellets = START_PELLETS.copy()
        self._power_pellets = START_POWER_PELLETS.copy()
        self._pellets_left = int(self._pellets.sum() + self._power_pellets.sum())
        self._board = draw_board(self._pellets, self._power_pellets)
        self._pacman = PACMAN_START
        self._heading = PACMAN_START_HEADING
        self._requested = None
        self._ghost_tiles = list(GHOST_STARTS)
        self._ghost_headings = list(GHOST_START_HEADINGS)
        self._ghost_release = list(GHOST_RELEASE_STEPS)
        self._frightened = [False] * len(GHOST_STARTS)
        self._frightened_left = 0
        self._phase, self._phase_steps = 0, 0
        self._tick = 0
        self._score = 0.0
        self._draw()
        if self.render_mode == "human":
            self.render()
        return self._frame.copy(), self._info()

    def step(self, action):
        if self._board is None:
            raise RuntimeError("PacmanEnv.step() was called before reset(); call env.reset() first.")
        if self._terminated:
            raise RuntimeError(
                "PacmanEnv.step() was called after the episode terminated; call env.reset() first."
            )
        action = self._checked_action(action)
        self._move_pacman(action)
        reward = self._eat_pellet()
        ghost_reward, caught = self._collide()
        reward += ghost_reward
        if not caught:
            self._move_ghosts()
            ghost_reward, caught = self._collide()
            reward += ghost_reward
        self._advance_clocks()
        self._score += reward
        self._draw()
        if self.render_mode == "human":
            self.render()
        self._terminated = caught or self._pellets_left == 0
        return self._frame.copy(), reward, self._terminated, False, self._info()

    @staticmethod
    def _checked_action(action) -> int:
        """The action as an int; like Gymnasium's Discrete, an integer (Python or numpy, or a 0-d
        integer array), never a float, string or bool, which int() would quietly turn into a move."""
        if isinstance(action, np.ndarray) and action.shape == ():
            action = action[()]
        if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
            raise ValueError(
                f"action must be an integer in [0, 5) (NOOP, UP, RIGHT, LEFT, DOWN), got {action!r} "
                f"of type {type(action).__name__}."
            )
        if not 0 <= action < 5:
            raise ValueError(f"action must be an int in [0, 5) (NOOP, UP, RIGHT, LEFT, DOWN), got {action}.")
        return int(action)

    def _info(self) -> dict:
        return {"score": self._score, "pellets_left": self._pellets_left}

    # 2. Pacman
    def _move_pacman(self, action: int) -> None:
        if action != NOOP:
            self._requested = action
        row, col = self._pacman
        if self._requested is not None and PACMAN_NEXT_TILE[row][col][self._requested] is not None:
            self._heading, self._requested = self._requested, None
        ahead = PACMAN_NEXT_TILE[row][col][self._heading]
        if ahead is not None:
            self._pacman = ahead

    def _eat_pellet(self) -> float:
        tile = self._pacman
        if self._pellets[tile]:
            self._pellets[tile] = False
            reward = PELLET_REWARD
        elif self._power_pellets[tile]:
            self._power_pellets[tile] = False
            self._frighten()
            reward = POWER_PELLET_REWARD
        else:
            return 0.0
        self._pellets_left -= 1
        paste(self._board, tile, EMPTY_SPRITE)
        return reward

    def _frighten(self) -> None:
        self._frightened_left = FRIGHTENED_STEPS
        for index in range(len(self._ghost_tiles)):
            self._frightened[index] = True
            self._ghost_headings[index] = REVERSE[self._ghost_headings[index]]

    def _collide(self) -> tuple[float, bool]:
        reward, caught = 0.0, False
        for index, tile in enumerate(self._ghost_tiles):
            if tile != self._pacman:
                continue
            if self._frightened[index]:
                reward += GHOST_REWARD
                self._ghost_tiles[index], self._ghost_headings[index] = PEN_HOME, LEFT
                self._frightened[index] = False
                self._ghost_release[index] = self._tick
            else:
                caught = True
        return reward, caught

    # 3. ghosts
    def _move_ghosts(self) -> None:
        for index, (row, col) in enumerate(self._ghost_tiles):
            if self._tick < self._ghost_release[index]:
                continue
            # Ghosts are slower than Pacman (2 steps in 3), frightened ghosts slower still (1 in 2).
            if self._frightened[index]:
                if self._tick % 2:
                    continue
            elif self._tick % 3 == 2:
                continue
            heading = self._ghost_headings[index]
            options = [
                turn
                for turn in GHOST_TURN_ORDER
                if turn != REVERSE[heading] and GHOST_NEXT_TILE[row][col][turn] is not None
            ]
            if not options:
                options = [REVERSE[heading]]
            if len(options) == 1:
                heading = options[0]
            elif self._frightened[index]:
                heading = options[int(self.np_random.integers(len(options)))]
            else:
                target_row, target_col = self._ghost_target(index)
                heading = min(
                    options,
                    key=lambda turn: (
                        (GHOST_NEXT_TILE[row][col][turn][0] - target_row) ** 2
                        + (GHOST_NEXT_TILE[row][col][turn][1] - target_col) ** 2
                    ),
                )
            self._ghost_headings[index] = heading
            self._ghost_tiles[index] = GHOST_NEXT_TILE[row][col][heading]

    def _ghost_target(self, index: int) -> tuple[int, int]:
        if self._ghost_tiles[index] in PEN:
            return PEN_EXIT_TARGET
        if MODE_SCHEDULE[self._phase][0] == SCATTER:
            return SCATTER_TARGETS[index]
        (row, col), (d_row, d_col) = self._pacman, HEADING_DELTAS[self._heading]
        if index == 1:  # Pinky ambushes ahead of Pacman
            return row + PINKY_LEAD * d_row, col + PINKY_LEAD * d_col
        if index == 2:  # Inky: the point ahead of Pacman, mirrored through Blinky
            blinky_row, blinky_col = self._ghost_tiles[0]
            return 2 * (row + INKY_LEAD * d_row) - blinky_row, 2 * (col + INKY_LEAD * d_col) - blinky_col
        if index == 3:  # Clyde chases from afar and retreats to his corner when close
            ghost_row, ghost_col = self._ghost_tiles[3]
            if (ghost_row - row) ** 2 + (ghost_col - col) ** 2 <= CLYDE_SHY_DISTANCE**2:
                return SCATTER_TARGETS[3]
        return row, col

    def _advance_clocks(self) -> None:
        self._tick += 1
        if self._frightened_left > 0:
            self._frightened_left -= 1
            if self._frightened_left == 0:
                self._frightened = [False] * len(self._frightened)
            return
        duration = MODE_SCHEDULE[self._phase][1]
        self._phase_steps += 1
        if duration is not None and self._phase_steps >= duration:
            self._phase, self._phase_steps = self._phase + 1, 0
            # The arcade's tell that the mode changed: every ghost outside the pen turns around.
            for index, tile in enumerate(self._ghost_tiles):
                if tile not in PEN:
                    self._ghost_headings[index] = REVERSE[self._ghost_headings[index]]

    # 4. frames
    def _draw(self) -> None:
        frame = self._board.copy()
        for index, tile in enumerate(self._ghost_tiles):
            paste(frame, tile, FRIGHTENED_SPRITE if self._frightened[index] else GHOST_SPRITES[index])
        paste(frame, self._pacman, PACMAN_SPRITES[self._heading])
        self._frame = frame

    @property
    def state(self) -> PacmanState:
        """What the current frame shows (Pacman is drawn over ghosts, ghosts over pellets)."""
        if self._board is None:
            raise RuntimeError("PacmanEnv.state is undefined before reset(); call env.reset() first.")
        ghosts = tuple(sorted({tile for tile in self._ghost_tiles if tile != self._pacman}))
        visible = np.ones((GRID, GRID), dtype=bool)
        for tile in ghosts:
            visible[tile] = False
        return PacmanState(
            pacman=self._pacman,
            ghosts=ghosts,
            pellets=self._pellets & visible,
            walls=WALLS.copy(),
            power_pellets=self._power_pellets & visible,
        )

    def render(self):
        if self._frame is None:
            raise RuntimeError("PacmanEnv.render() was called before reset(); call env.reset() first.")
        if self.render_mode == "rgb_array":
            return self._frame.copy()
        if self.render_mode == "human":
            self._window.show(self._frame)
        return None

    def get_keys_to_action(self) -> dict[tuple[int, ...], int]:
        """The project's key map for ``gymnasium.utils.play.play(env)``, which looks this method up."""
        return keys_to_action()

    def close(self):
        self._window.close()
