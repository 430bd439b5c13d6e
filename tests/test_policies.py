"""The players the recorder offers besides the explorer: sticky keys, the human-like player and
mixtures, checked on the real game, and the event counts a recording is summarised by."""

from collections import Counter

import numpy as np
import pytest

import envs
from envs.events import episode_events
from envs.maze import GRID, NOOP, PACMAN_NEXT_TILE
from recorder.humanlike import HumanLikePlayer
from recorder.mixture import MixturePolicy, parse_mixture
from recorder.policies import PolicyError, make_policy
from worldmodel.config import load_config


def play(policy, seed: int, steps: int = 300):
    """Actions the policy takes in one real episode from reset(seed), reseeded as the recorder does."""
    game = envs.PacmanEnv()
    frame, _ = game.reset(seed=seed)
    policy.reset(seed)
    actions = []
    for _ in range(steps):
        actions.append(int(policy(frame)))
        frame, _, terminated, _, _ = game.step(actions[-1])
        if terminated:
            break
    return np.array(actions)


@pytest.mark.parametrize(
    "name", ["sticky", "humanlike", "mix:explore=0.3,humanlike=0.4,sticky=0.2,random=0.1"]
)
def test_players_are_reproducible_under_a_seed(name):
    game = envs.PacmanEnv()
    first, again = make_policy(name, game, env_id="Pacman-v0"), make_policy(name, game, env_id="Pacman-v0")
    np.testing.assert_array_equal(play(first, 3), play(again, 3))
    assert not np.array_equal(play(first, 3), play(first, 4))


def test_sticky_keys_are_held_for_several_steps():
    actions = play(make_policy("sticky", envs.PacmanEnv(), env_id="Pacman-v0"), 0, steps=200)
    changes = np.count_nonzero(np.diff(actions)) + 1
    assert len(actions) / changes >= 2  # held for 2-10 steps


def test_the_human_like_player_stops_at_walls_idles_reverses_and_waits_for_turns():
    player = make_policy("humanlike", envs.PacmanEnv(), env_id="Pacman-v0")
    total = Counter()
    for seed in range(40):
        total.update(episode_events(seed, play(player, seed, steps=1000)))
    assert total["stopped_against_wall"] > 0.05 * total["steps"]
    assert total["idle"] > 0.05 * total["steps"]
    assert total["reversal"] > 0.02 * total["steps"]
    # A turn tapped early and released: the game keeps the request until the maze allows it.
    taps = HumanLikePlayer(behaviours={"tap_turn": 1.0})
    waited = Counter()
    for seed in range(10):
        actions = play(taps, seed, steps=400)
        waited.update(episode_events(seed, actions))
        assert (actions == NOOP).mean() > 0.3  # released after each tap
    assert waited["turn_waited_over_4_steps"] > 0


def test_events_are_counted_from_a_replay_of_the_real_game():
    # Pressing nothing from the start: Pacman runs left to the first wall, then stands there.
    counts = episode_events(seed=0, actions=np.zeros(30, dtype=np.int64))
    assert counts["idle"] == 30 and counts["steps"] == 30
    assert counts["stopped_against_wall"] > 0 and counts["reversal"] == 0


def test_a_mixture_draws_its_players_in_proportion():
    weights = parse_mixture("mix:a=0.75,b=0.25")
    assert weights == {"a": 0.75, "b": 0.25}
    mixture = MixturePolicy({"a": lambda frame: 1, "b": lambda frame: 2}, weights)
    drawn = []
    for seed in range(2000):
        mixture.reset(seed)
        drawn.append(mixture.current)
    assert abs(drawn.count("a") / len(drawn) - 0.75) < 0.03
    # Inside an episode the player is redrawn now and then: both kinds of keys in one episode.
    mixture.reset(0)
    keys = {mixture(None) for _ in range(1000)}
    assert keys == {1, 2}


@pytest.mark.parametrize(
    ("spec", "problem"),
    [("mix:explore", "name=weight"), ("mix:explore=-1", "name=weight"), ("mix:explore=0", "no positive"),
     ("mix:human=1", "keyboard"), ("mix:nobody=1", "unknown policy")],
)  # fmt: skip
def test_bad_mixtures_are_refused_with_the_reason(spec, problem):
    with pytest.raises(PolicyError, match=problem):
        make_policy(spec, envs.PacmanEnv(), env_id="Pacman-v0")


def test_the_default_action_window_outlasts_any_turn_the_game_keeps_waiting():
    # A requested turn can only still be taken while Pacman runs straight on (stopped, he stays
    # stopped until a new key replaces the request), so no wait outlasts the maze's longest run.
    longest_run = 0
    for row, col, heading in np.ndindex(GRID, GRID, 5):
        tile, run = (row, col), 0
        while heading and run < 4 * GRID and PACMAN_NEXT_TILE[tile[0]][tile[1]][heading] is not None:
            tile, run = PACMAN_NEXT_TILE[tile[0]][tile[1]][heading], run + 1
        longest_run = max(longest_run, run)
    waits = []
    game, taps = envs.PacmanEnv(), HumanLikePlayer(behaviours={"tap_turn": 1.0, "idle": 0.2})
    for seed in range(20):
        frame, _ = game.reset(seed=seed)
        taps.reset(seed)
        last_pressed = {}
        for step in range(400):
            action, heading = taps(frame), game._heading
            last_pressed[action] = step
            frame, _, terminated, _, _ = game.step(action)
            if game._heading != heading:
                waits.append(step - last_pressed[game._heading])
            if terminated:
                break
    assert max(waits) <= longest_run
    assert load_config("configs/pacman-64.yaml").actions_seen - 1 > longest_run
