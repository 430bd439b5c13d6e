"""The one keyboard map of the project: arrow keys and WASD to the actions named UP, RIGHT, LEFT
and DOWN, number keys to a game's other actions.

Every game's map is built here from its action names (``key_map``; Pacman's is ``KEY_ACTIONS``) and
carried by its ``envs.games.GameSpec``: the recorder's human policy, play.py and
``gymnasium.utils.play.play`` (through ``PacmanEnv.get_keys_to_action``) all use it, so every way of
playing feels the same.
"""

import itertools
import os
from collections.abc import Iterable, Mapping

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402  (the prompt must be hidden before the import)

from envs.maze import ACTION_MEANINGS, NOOP  # noqa: E402

# Listed in priority order for the key-state form of action_from_keys: UP, RIGHT, LEFT, DOWN.
DIRECTION_KEYS: dict[str, tuple[int, int]] = {
    "UP": (pygame.K_UP, pygame.K_w),
    "RIGHT": (pygame.K_RIGHT, pygame.K_d),
    "LEFT": (pygame.K_LEFT, pygame.K_a),
    "DOWN": (pygame.K_DOWN, pygame.K_s),
}


def key_map(action_meanings: Iterable[str]) -> dict[int, int]:
    """pygame key -> action index for a game with these action names: arrows and WASD to the actions
    named UP, RIGHT, LEFT, DOWN (in that priority order), then number key i to any other action i < 10
    but NOOP, which is what no key held plays. Pacman's five actions give arrows and WASD only."""
    meanings = list(action_meanings)
    keys = {
        key: meanings.index(name) for name, pair in DIRECTION_KEYS.items() if name in meanings for key in pair
    }
    for index, name in enumerate(meanings[:10]):
        if name not in DIRECTION_KEYS and name != "NOOP":
            keys[pygame.K_0 + index] = index
    return keys


KEY_ACTIONS: dict[int, int] = key_map(ACTION_MEANINGS)  # Pacman's (and Ms. Pac-Man's five actions')


def _is_key_state(pressed) -> bool:
    """True for pygame.key.get_pressed() results and other key-code-indexed bool containers."""
    if isinstance(pressed, pygame.key.ScancodeWrapper | Mapping):
        return True
    try:
        return len(pressed) > 0 and isinstance(pressed[0], bool)
    except TypeError:
        return False


def action_from_keys(
    pressed: Iterable[int] | Mapping[int, bool], key_actions: Mapping[int, int] = KEY_ACTIONS
) -> int:
    """The action for the keys currently held; NOOP (action 0) when no key of ``key_actions`` is held.

    ``pressed`` is either the key codes held, in the order they were pressed, or a key state
    indexed by key code (``pygame.key.get_pressed()``, a sequence of bools, a dict).
    ``key_actions`` is a game's key map (``key_map``), Pacman's by default.
    Ties: with key codes the last mapped key listed wins (the most recent press); with a key
    state, which has no order, the first held key of the map wins (UP, RIGHT, LEFT, DOWN, numbers).
    """
    if _is_key_state(pressed):
        for key, action in key_actions.items():
            try:
                held = pressed[key]
            except (IndexError, KeyError):
                held = False
            if held:
                return action
        return NOOP
    action = NOOP
    for key in pressed:
        action = key_actions.get(key, action)
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
