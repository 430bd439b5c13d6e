"""Who plays while the recorder records: the scripted explorer, uniform random, sticky random, a
human-like player, a human at the keyboard, any `module:callable`, or a mixture of them.
A policy maps an observation to an action index."""

from __future__ import annotations

import importlib
import os

import numpy as np

import envs
from envs.games import UniformRandomPlayer
from recorder.humanlike import HumanLikePlayer
from recorder.mixture import MIX_PREFIX, MixturePolicy, parse_mixture

POLICY_NAMES = ("explore", "random", "sticky", "humanlike", "human", "module:callable", "mix:NAME=W,...")


class PolicyError(ValueError):
    """A policy name that cannot be resolved, or a policy that returns an invalid action."""


RandomPolicy = UniformRandomPlayer  # uniform over the actions, seeded per episode


class StickyRandomPolicy(RandomPolicy):
    """Holds a random key for 2-10 steps, as an agent with action repeat or a button-masher does."""

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.action, self.steps_left = 0, 0

    def __call__(self, observation) -> int:
        if self.steps_left == 0:
            self.action = int(self.rng.integers(self.num_actions))
            self.steps_left = int(self.rng.integers(2, 11))
        self.steps_left -= 1
        return self.action


class HumanPolicy:
    """A pygame window showing the upscaled frame; keys become actions through the game's key map
    (``GameSpec.action_from_keys``; Pacman's when none is given).

    Closing the window or pressing ESC sets `stop_requested`: the recorder saves the current
    episode and stops.
    """

    def __init__(self, fps: float, scale: int = 8, action_from_keys=envs.action_from_keys):
        if os.environ.get("SDL_VIDEODRIVER") == "dummy" or not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        ):
            raise PolicyError(
                "the human policy needs a display; run it on a desktop, or pick --policy explore"
            )
        import pygame

        self._pygame, self._action_from_keys = pygame, action_from_keys
        pygame.display.init()  # not pygame.init(): that starts audio too, which nothing here plays
        self.fps, self.scale = fps, scale
        self.screen = None
        self.clock = pygame.time.Clock()
        self.stop_requested = False

    def __call__(self, observation) -> int:
        pygame = self._pygame
        height, width = observation.shape[:2]
        if self.screen is None:
            self.screen = pygame.display.set_mode((width * self.scale, height * self.scale))
            pygame.display.set_caption("recording - arrows/WASD to move, ESC to stop")
        for event in pygame.event.get():
            if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
                self.stop_requested = True
        surface = pygame.surfarray.make_surface(np.ascontiguousarray(observation.swapaxes(0, 1)))
        self.screen.blit(pygame.transform.scale(surface, self.screen.get_size()), (0, 0))
        pygame.display.flip()
        self.clock.tick(self.fps)
        return int(self._action_from_keys(pygame.key.get_pressed()))

    def close(self) -> None:
        self._pygame.quit()


def _load_callable(spec: str):
    module_name, _, attribute = spec.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise PolicyError(
            f"policy {spec!r}: cannot load {attribute!r} from module {module_name!r} ({error})"
        ) from None
    # A class names a policy type: one instance plays every episode.
    policy = target() if isinstance(target, type) else target
    if not callable(policy):
        raise PolicyError(f"policy {spec!r} is not callable; name a function or a class with __call__")
    return policy


def make_policy(name: str, env, seed: int = 0, env_id: str | None = None):
    """Build the policy called `name` for `env`; a policy is `policy(observation) -> int`, with optional `reset(seed)`."""
    num_actions = int(env.action_space.n)
    env_id = env_id or (env.spec.id if env.spec else "")
    game = envs.game_spec(env_id, envs.game_action_meanings(env))
    if name.startswith(MIX_PREFIX):
        try:
            weights = parse_mixture(name)
        except ValueError as error:
            raise PolicyError(str(error)) from None
        if "human" in weights:
            raise PolicyError(f"policy {name!r}: the keyboard player 'human' cannot be part of a mixture")
        players = {part: make_policy(part, env, seed, env_id) for part in weights}
        return MixturePolicy(players, weights)
    if name == "sticky":
        return StickyRandomPolicy(num_actions, seed)
    if name == "humanlike":
        if game.has_game_state:  # it reads Pacman and the walls off the frames with the parser
            return HumanLikePlayer(seed)
        return StickyRandomPolicy(num_actions, seed)
    if name == "explore":
        if game.explorer is not None:
            return game.explorer(seed)
        return StickyRandomPolicy(num_actions, seed)
    if name == "random":
        return RandomPolicy(num_actions, seed)
    if name == "human":
        return HumanPolicy(
            float(env.metadata.get("render_fps") or 15), action_from_keys=game.action_from_keys
        )
    if ":" in name:
        return _load_callable(name)
    raise PolicyError(f"unknown policy {name!r}; choose one of {', '.join(POLICY_NAMES)}")


def checked_action(action, num_actions: int, policy_name: str) -> int:
    """The policy's action as an int, or a clear error naming the policy and the bad value."""
    try:
        index = int(np.asarray(action).item())
    except (TypeError, ValueError):
        raise PolicyError(f"policy {policy_name!r} returned {action!r}, not an action index") from None
    if not 0 <= index < num_actions:
        raise PolicyError(f"policy {policy_name!r} returned action {index}, outside 0..{num_actions - 1}")
    return index
