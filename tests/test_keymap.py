"""The shared key map: arrows and WASD to actions, NOOP when idle, and the documented tie rule."""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import pygame
import pytest

from envs import KEY_ACTIONS, action_from_keys
from envs.maze import DOWN, LEFT, NOOP, RIGHT, UP


@pytest.mark.parametrize(
    ("keys", "action"),
    [
        ([], NOOP),
        ([pygame.K_SPACE, pygame.K_RETURN], NOOP),
        ([pygame.K_UP], UP),
        ([pygame.K_w], UP),
        ([pygame.K_RIGHT], RIGHT),
        ([pygame.K_d], RIGHT),
        ([pygame.K_LEFT], LEFT),
        ([pygame.K_a], LEFT),
        ([pygame.K_DOWN], DOWN),
        ([pygame.K_s], DOWN),
        ([pygame.K_UP, pygame.K_a], LEFT),  # the most recent press wins
        ([pygame.K_a, pygame.K_UP, pygame.K_SPACE], UP),
    ],
)
def test_key_codes_map_to_actions(keys, action):
    assert action_from_keys(keys) == action


def test_key_state_forms():
    assert action_from_keys({pygame.K_s: True, pygame.K_SPACE: True}) == DOWN
    assert action_from_keys({pygame.K_DOWN: True, pygame.K_UP: True}) == UP  # fixed priority order
    held = [False] * 512
    held[pygame.K_d] = True
    assert action_from_keys(held) == RIGHT
    assert action_from_keys([False] * 512) == NOOP


def test_pygame_pressed_state_with_nothing_held_is_noop():
    pygame.display.init()
    try:
        assert action_from_keys(pygame.key.get_pressed()) == NOOP
    finally:
        pygame.display.quit()


def test_every_direction_has_an_arrow_and_a_letter():
    assert sorted(KEY_ACTIONS.values()) == sorted([UP, UP, RIGHT, RIGHT, LEFT, LEFT, DOWN, DOWN])
