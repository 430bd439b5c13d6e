"""The shared key map: arrows and WASD to actions, NOOP when idle, the documented tie rule, and
the same map driving Pacman-v0 through gymnasium.utils.play.play."""

import os
import warnings

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import gymnasium
import pygame
import pytest

from envs import KEY_ACTIONS, action_from_keys
from envs.keymap import keys_to_action
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


def test_play_form_of_the_key_map_agrees_with_action_from_keys():
    mapping = keys_to_action()
    for key, action in KEY_ACTIONS.items():
        assert mapping[(key,)] == action
    both = tuple(sorted((pygame.K_DOWN, pygame.K_LEFT)))
    assert mapping[both] == action_from_keys({pygame.K_DOWN: True, pygame.K_LEFT: True}) == LEFT


def test_gymnasiums_play_drives_pacman_with_the_key_map():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns when it cannot switch matplotlib to a window backend
        from gymnasium.utils.play import play

    taken = []

    def callback(previous, observation, action, reward, terminated, truncated, info):
        taken.append(action)
        pygame.event.post(pygame.event.Event(pygame.QUIT))  # as closing the window: play() returns

    pygame.display.init()
    for key in (pygame.K_UP, pygame.K_d):  # held together before the first step
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key))
    play(gymnasium.make("Pacman-v0", render_mode="rgb_array"), seed=0, fps=1000, callback=callback)
    assert taken == [UP]  # the key map's priority: UP over RIGHT
