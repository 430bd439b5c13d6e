"""Behaviour of the Pacman game: Gymnasium API, determinism, movement rules, rewards and endings."""

import os
import warnings

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs import ACTION_MEANINGS, FRAME_SIZE, Explorer, PacmanEnv
from envs.maze import DELTAS, DOWN, FRIGHTENED, LEFT, NOOP, PACMAN, PEN, RIGHT, UP, WALLS
from envs.pacman import GHOST_REWARD, PELLET_REWARD, POWER_PELLET_REWARD


def test_passes_gymnasium_checker_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gymnasium.make("Pacman-v0").unwrapped)


def test_registered_env_passes_checker_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # The checker always notes that a made env is wrapped (TimeLimit); that notice is expected.
        warnings.filterwarnings("ignore", message=".*is different from the unwrapped version.*")
        check_env(gymnasium.make("Pacman-v0"))


def test_registration_is_idempotent_with_step_limit():
    import importlib

    importlib.reload(envs)
    env = gymnasium.make("Pacman-v0")
    assert env.spec.max_episode_steps == 1000
    assert envs.ACTION_MEANINGS == ("NOOP", "UP", "RIGHT", "LEFT", "DOWN")
    assert env.observation_space.shape == (FRAME_SIZE, FRAME_SIZE, 3)


def test_step_limit_truncates():
    env = gymnasium.make("Pacman-v0", max_episode_steps=3)
    env.reset(seed=0)
    flags = [env.step(NOOP)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]


def _rollout(seed: int, steps: int = 300):
    env, explorer = PacmanEnv(), Explorer(seed)
    frame, _ = env.reset(seed=seed)
    frames, rewards, ends = [frame], [], []
    for _ in range(steps):
        frame, reward, terminated, truncated, _ = env.step(explorer(frame))
        frames.append(frame)
        rewards.append(reward)
        ends.append((terminated, truncated))
        if terminated:
            break
    return np.stack(frames), rewards, ends


def test_same_seed_and_actions_give_identical_trajectories():
    for seed in (3, 14):
        first, second = _rollout(seed), _rollout(seed)
        assert np.array_equal(first[0], second[0])
        assert first[1:] == second[1:]


def test_noop_keeps_heading_and_turns_wait_for_an_opening():
    env = PacmanEnv()
    env.reset(seed=0)  # Pacman starts at (10, 7) heading left; the first opening upward is (9, 4)
    tiles = []
    for action in (UP, NOOP, NOOP, NOOP):
        env.step(action)
        tiles.append(env.state.pacman)
    assert tiles == [(10, 6), (10, 5), (10, 4), (9, 4)]


def test_walls_stop_pacman():
    env = PacmanEnv()
    env.reset(seed=0)
    tiles = []
    for _ in range(9):
        env.step(RIGHT)
        tiles.append(env.state.pacman)
    assert WALLS[10, 15]
    assert tiles[6:] == [(10, 14)] * 3  # reaches the wall after 7 steps, then stays


@pytest.mark.parametrize(
    ("action", "mouth", "back"),
    [(RIGHT, (slice(1, 3), 3), (slice(1, 3), 0)), (LEFT, (slice(1, 3), 0), (slice(1, 3), 3))],
)
def test_heading_is_visible_in_the_frame(action, mouth, back):
    env = PacmanEnv()
    env.reset(seed=0)
    frame = env.step(action)[0]
    row, col = env.state.pacman
    sprite = frame[row * 4 : row * 4 + 4, col * 4 : col * 4 + 4]
    # The mouth (background pixels in the middle rows) sits on the side Pacman faces.
    assert sprite[mouth].sum() == 0 and (sprite[back] == PACMAN).all()


def test_eating_a_pellet_rewards_and_removes_it():
    env = PacmanEnv()
    env.reset(seed=0)
    pellets_before = env.state.pellets.sum()
    _, reward, _, _, info = env.step(LEFT)
    assert reward == PELLET_REWARD and not env.state.pellets[10, 6]
    assert env.state.pellets.sum() == pellets_before - 1 and info["score"] == PELLET_REWARD
    _, reward, _, _, _ = env.step(RIGHT)  # back to the start tile, which had no pellet
    assert reward == 0.0


def test_power_pellet_frightens_ghosts():
    env = PacmanEnv()
    env.reset(seed=0)
    for action in [LEFT] * 6 + [DOWN]:
        env.step(action)
    frame, reward, terminated, _, _ = env.step(DOWN)
    assert env.state.pacman == (12, 1) and reward == POWER_PELLET_REWARD and not terminated
    assert (frame.reshape(-1, 3) == FRIGHTENED).all(axis=1).any()
    assert not env.state.power_pellets[12, 1]


def test_caught_by_a_ghost_terminates():
    env = PacmanEnv()
    env.reset(seed=0)
    for _ in range(400):
        _, _, terminated, truncated, info = env.step(NOOP)  # runs into a corner and waits there
        if terminated:
            break
    assert terminated and not truncated and info["pellets_left"] > 0


def test_eating_a_frightened_ghost_rewards_and_sends_it_home():
    env = PacmanEnv()
    for seed in range(40):
        frame, _ = env.reset(seed=seed)
        explorer = Explorer(seed)
        for _ in range(1000):
            frame, reward, terminated, _, _ = env.step(explorer(frame))
            if reward >= GHOST_REWARD:
                assert not terminated and any(tile in PEN for tile in env._ghost_tiles)
                return
            if terminated:
                break
    pytest.fail("no frightened ghost was eaten in 40 explorer episodes")


def test_rgb_array_render_returns_the_observation():
    env = gymnasium.make("Pacman-v0", render_mode="rgb_array")
    frame, _ = env.reset(seed=0)
    assert np.array_equal(env.render(), frame)
    frame, *_ = env.step(UP)
    assert np.array_equal(env.render(), frame)


def test_human_render_opens_an_upscaled_window():
    import pygame

    env = PacmanEnv(render_mode="human")
    env.reset(seed=0)
    env.step(LEFT)
    assert pygame.display.get_surface().get_size() == (FRAME_SIZE * 8, FRAME_SIZE * 8)
    env.close()
    env.close()


def test_invalid_action_and_render_mode_are_refused():
    env = PacmanEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="NOOP, UP, RIGHT, LEFT, DOWN"):
        env.step(len(ACTION_MEANINGS))
    with pytest.raises(ValueError, match="render_mode"):
        PacmanEnv(render_mode="ansi")


def _explore(seed: int, steps: int = 1000):
    """Yields (parsed state before the step, action) for one explorer episode."""
    env, explorer = PacmanEnv(), Explorer(seed)
    frame, _ = env.reset(seed=seed)
    for _ in range(steps):
        state, action = env.state, explorer(frame)
        yield state, action
        frame, _, terminated, _, _ = env.step(action)
        if terminated:
            return


def test_explorer_never_heads_into_a_wall_and_covers_the_maze():
    walkable = ~WALLS
    for tile in PEN:
        walkable[tile] = False
    visited = np.zeros_like(walkable)
    actions = set()
    for seed in range(10):
        for state, action in _explore(seed):
            visited[state.pacman] = True
            actions.add(action)
            if action != NOOP:
                d_row, d_col = DELTAS[action]
                ahead = ((state.pacman[0] + d_row) % 16, (state.pacman[1] + d_col) % 16)
                assert walkable[ahead], (
                    f"explorer chose {ACTION_MEANINGS[action]} into a wall at {state.pacman}"
                )
    assert visited[walkable].mean() >= 0.8
    assert actions == set(range(len(ACTION_MEANINGS)))


def test_explorer_is_reproducible_and_keeps_its_action_without_pacman():
    assert [a for _, a in _explore(5, 200)] == [a for _, a in _explore(5, 200)]
    explorer = Explorer(0)
    action = explorer(PacmanEnv().reset(seed=0)[0])
    assert explorer(np.zeros((64, 64, 3), np.uint8)) == action
