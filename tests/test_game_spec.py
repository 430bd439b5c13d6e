"""One spec per game: what the project knows about Pacman, Ms. Pac-Man and any other Gymnasium game
(actions, keys, the scripted player, the frame parser), and no module but the registry telling games
apart by their env id."""

import ast
from pathlib import Path

import gymnasium
import numpy as np
import pygame
import pytest

import envs
from envs.games import MS_PACMAN, PACMAN, UniformRandomPlayer, game_spec, generic_spec
from recorder.policies import StickyRandomPolicy, make_policy

REPOSITORY = Path(__file__).resolve().parents[1]
DIRECTIONS = {"UP": (pygame.K_UP, pygame.K_w), "RIGHT": (pygame.K_RIGHT, pygame.K_d),
              "LEFT": (pygame.K_LEFT, pygame.K_a), "DOWN": (pygame.K_DOWN, pygame.K_s)}  # fmt: skip


def test_pacman_spec_matches_the_real_game():
    game = gymnasium.make("Pacman-v0")
    spec = game_spec("Pacman-v0")
    assert spec is PACMAN and spec.env_id == "Pacman-v0"
    assert spec.action_meanings == tuple(game.unwrapped.action_meanings)
    assert spec.action_meanings == ("NOOP", "UP", "RIGHT", "LEFT", "DOWN")
    assert spec.num_actions == game.action_space.n
    for name, keys in DIRECTIONS.items():
        assert all(spec.key_actions[key] == spec.action_meanings.index(name) for key in keys)
    assert dict(spec.key_actions) == envs.KEY_ACTIONS  # every way of playing Pacman uses the same keys
    assert spec.action_from_keys([]) == 0 and spec.action_from_keys([pygame.K_d]) == 2
    # The explorer starts and drives its episodes; the parser makes the game-state metrics possible.
    assert isinstance(spec.scripted_player(0), envs.Explorer)
    assert spec.parse_frame is envs.parse_frame and spec.has_game_state
    frame, _ = game.reset(seed=0)
    assert spec.parse_frame(frame) == game.unwrapped.state


@pytest.mark.parametrize("env_id", ["ALE/MsPacman-v5", "MsPacman-v4"])
def test_ms_pacman_spec_gives_pacmans_five_actions_of_the_atari_games_nine(env_id):
    spec = game_spec(env_id)
    assert spec.env_id == env_id and spec.action_meanings == MS_PACMAN.action_meanings
    assert spec.action_meanings == PACMAN.action_meanings
    game = envs.make_env(env_id)
    raw_meanings = game.unwrapped.get_action_meanings()
    assert len(raw_meanings) == 9
    assert tuple(game.get_wrapper_attr("action_meanings")) == spec.action_meanings
    assert game.action_space.n == spec.num_actions
    # Each direction key presses the Atari game's action of that name.
    to_game = game.get_wrapper_attr("action")
    for name, keys in DIRECTIONS.items():
        assert all(raw_meanings[to_game(spec.key_actions[key])] == name for key in keys)
    # Our explorer and parser read only our own maze: Ms. Pac-Man is played at random, unparsed.
    assert spec.explorer is None and spec.parse_frame is None and not spec.has_game_state
    assert isinstance(spec.scripted_player(0), UniformRandomPlayer)
    assert envs.gymnasium_package(env_id) == "ale-py"
    game.close()


def test_any_other_game_gets_a_generic_spec_from_its_action_space():
    spec = game_spec("CartPole-v1")
    assert spec.action_meanings == ("ACTION_0", "ACTION_1") and spec.num_actions == 2
    assert spec.explorer is None and spec.parse_frame is None and not spec.has_game_state
    assert envs.gymnasium_package("CartPole-v1") is None
    # Nameless actions are on the number keys.
    assert dict(spec.key_actions) == {pygame.K_0: 0, pygame.K_1: 1}
    # Uniform random play, seeded: the same stream as numpy's generator, as contexts were drawn before.
    player, rng = spec.scripted_player(7), np.random.default_rng(7)
    actions = [player(None) for _ in range(200)]
    assert actions == [int(rng.integers(2)) for _ in range(200)] and set(actions) == {0, 1}


def test_named_actions_of_a_generic_game_get_arrows_and_number_keys():
    spec = generic_spec("ALE/Breakout-v5", ["NOOP", "FIRE", "RIGHT", "LEFT"])
    assert dict(spec.key_actions) == {
        pygame.K_RIGHT: 2, pygame.K_d: 2, pygame.K_LEFT: 3, pygame.K_a: 3, pygame.K_1: 1
    }  # fmt: skip
    assert spec.action_from_keys([pygame.K_1]) == 1 and spec.action_from_keys([pygame.K_UP]) == 0
    assert game_spec("ALE/Breakout-v5", ["NOOP", "FIRE", "RIGHT", "LEFT"]) == spec


def test_game_without_discrete_actions_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="not a Discrete space"):
        game_spec("Pendulum-v1")


def test_the_recorder_asks_the_spec_who_plays():
    pacman = envs.make_env("Pacman-v0")
    assert isinstance(make_policy("explore", pacman, env_id="Pacman-v0"), envs.Explorer)
    ms_pacman = envs.make_env("ALE/MsPacman-v5")
    for name in ("explore", "humanlike"):  # they read our maze's frames: sticky keys elsewhere
        assert isinstance(make_policy(name, ms_pacman, env_id="ALE/MsPacman-v5"), StickyRandomPolicy)
    ms_pacman.close()


# --- no module but the registry tells games apart by their env id ---------------------------------

CHECKED = ["envs", "recorder", "worldmodel", "play.py", "train.py"]
REGISTRY = Path("envs/games.py")


def _mentions_env_id(node: ast.AST) -> bool:
    text = ast.unparse(node)
    return "env_id" in text or "spec.id" in text


def _is_id_constant(node: ast.AST) -> bool:
    """A string literal ("Pacman-v0", "pacman") or an UPPER_CASE constant (``PARSED_ENV``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    return isinstance(node, ast.Name) and node.id.isupper()


def env_id_tests(source: str) -> list[str]:
    """The expressions of ``source`` that test an env id against a string: ``env_id == "X"``,
    ``"x" in env_id``, ``env_id.startswith("X")``, ``env_id.lower()`` and the like."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(map(_mentions_env_id, sides)) and any(map(_is_id_constant, sides)):
                found.append(ast.unparse(node))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method = node.func.attr
            if method in {"startswith", "endswith", "lower", "upper", "casefold"} and _mentions_env_id(
                node.func.value
            ):
                found.append(ast.unparse(node))
    return found


def test_the_env_id_check_finds_the_tests_it_forbids():
    forbidden = """
if env_id == "Pacman-v0": pass
if settings.env_id == PARSED_ENV: pass
if env_id.startswith("Pacman"): pass
if "pacman" in env_id.lower(): pass
if trajectories.env_id.startswith("ALE/"): pass
"""
    assert len(env_id_tests(forbidden)) == 6  # the last but one counts twice: `in` and `.lower()`
    allowed = """
if trajectories.env_id != config.env_id: pass
spec = game_spec(settings.env_id)
game = gymnasium.make("Pacman-v0")
"""
    assert env_id_tests(allowed) == []


def test_only_the_registry_tests_env_ids_by_string():
    paths = [p for name in CHECKED for p in sorted((REPOSITORY / name).rglob("*.py"))]
    assert len(paths) > 30
    offenders = {
        str(path.relative_to(REPOSITORY)): found
        for path in paths
        if path.relative_to(REPOSITORY) != REGISTRY and (found := env_id_tests(path.read_text()))
    }
    assert offenders == {}, f"ask envs.game_spec(env_id) instead of testing the id: {offenders}"
