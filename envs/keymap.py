"""The one keyboard map of the project: arrow keys and WASD to Pacman actions.

Used by the recorder's human policy, by play.py and by ``gymnasium.utils.play.play`` (through
``PacmanEnv.get_keys_to_action``), so every way of playing feels the same.
"""

import itertools
import os
from collections.abc import Iterable, Mapping

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402  (the prompt must be hidden before the import)

from envs.maze import DOWN, LEFT, NOOP, RIGHT, UP  # noqa: E402

# Listed in priority order for the key-state form of action_from_keys: UP, RIGHT, LEFT, DOWN.
KEY_ACTIONS: dict[int, int] = {
    pygame.K_UP: UP,
    pygame.K_w: UP,
    pygame.K_RIGHT: RIGHT,
    pygame.K_d: RIGHT,
    pygame.K_LEFT: LEFT,
    pygame.K_a: LEFT,
    pygame.K_DOWN: DOWN,
    pygame.K_s: DOWN,
}


def _is_key_state(pressed) -> bool:
    """True for pygame.key.get_pressed() results and other key-code-indexed bool containers."""
    if isinstance(pressed, pygame.key.ScancodeWrapper | Mapping):
        return True
    try:
        return len(pressed) > 0 and isinstance(pressed[0], bool)
    except TypeError:
        return False


def action_from_keys(pressed: Iterable[int] | Mapping[int, bool]) -> int:
    """The action for the keys currently held; NOOP when no direction key is held.

    ``pressed`` is either the key codes held, in the order they were pressed, or a key state
    indexed by key code (``pygame.key.get_pressed()``, a sequence of bools, a dict).
    Ties: with key codes the last direction key listed wins (the most recent press); with a key
    state, which has no order, the first held direction of UP, RIGHT, LEFT, DOWN wins.
    """
    if _is_key_state(pressed):
        for key, action in KEY_ACTIONS.items():
            try:
                held = pressed[key]
            except (IndexError, KeyError):
                held = False
            if held:
                return action
        return NOOP
    action = NOOP
    for key in pressed:
        action = KEY_ACTIONS.get(key, action)
    return action


def keys_to_action() -> dict[tuple[int, ...], int]:
    """The key map in the form ``gymnasium.utils.play.play`` takes: every combination of direction keys
    held together, as sorted key codes, to the action ``action_from_keys`` gives that key state."""
    keys = sorted(KEY_ACTIONS)
    return {
        combination: action_from_keys(dict.fromkeys(combination, True))
        for size in range(1, len(keys) + 1)
        for combination in itertools.combinations(keys, size)
    }
