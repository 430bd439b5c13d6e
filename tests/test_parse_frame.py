"""parse_frame reads back exactly what the renderer drew, tolerates noise, and refuses bad input."""

import numpy as np
import pytest

from envs import Explorer, PacmanEnv, PacmanState, parse_frame
from envs.maze import PACMAN_START, WALLS


def _states_and_frames(seeds, steps_per_seed):
    """Frames and true states over random-action and explorer play, across several seeds."""
    env = PacmanEnv()
    for seed in seeds:
        rng = np.random.default_rng(seed)
        explorer = Explorer(seed)
        frame, _ = env.reset(seed=seed)
        yield frame, env.state
        for step in range(steps_per_seed):
            action = explorer(frame) if seed % 2 else int(rng.integers(5))
            frame, _, terminated, _, _ = env.step(action)
            yield frame, env.state
            if terminated or step % 400 == 399:
                frame, _ = env.reset(seed=seed * 1000 + step)


def test_round_trip_over_many_states():
    checked = 0
    for frame, state in _states_and_frames(seeds=range(6), steps_per_seed=500):
        parsed = parse_frame(frame)
        assert parsed == state, f"differs in {parsed.differences(state)}"
        checked += 1
    assert checked > 3000


def test_reset_frame_shows_the_start():
    frame, _ = PacmanEnv().reset(seed=0)
    state = parse_frame(frame)
    assert state.pacman == PACMAN_START
    assert len(state.ghosts) == 4
    assert np.array_equal(state.walls, WALLS)
    assert state.power_pellets.sum() == 4 and state.pellets.sum() > 90


def test_mild_noise_still_parses():
    rng = np.random.default_rng(0)
    for frame, state in _states_and_frames(seeds=(7, 8), steps_per_seed=150):
        noisy = np.clip(frame + rng.normal(0, 12, frame.shape), 0, 255).astype(np.uint8)
        parsed = parse_frame(noisy)
        assert parsed == state, f"differs in {parsed.differences(state)}"


def test_mild_blur_still_parses():
    for frame, state in _states_and_frames(seeds=(9,), steps_per_seed=200):
        pixels = frame.astype(np.float32)
        padded = np.pad(pixels, ((1, 1), (1, 1), (0, 0)), mode="edge")
        neighbours = padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]
        blurred = (0.6 * pixels + 0.1 * neighbours).round().astype(np.uint8)
        parsed = parse_frame(blurred)
        assert parsed == state, f"differs in {parsed.differences(state)}"


def test_frame_without_pacman_parses_to_none():
    state = parse_frame(np.zeros((64, 64, 3), dtype=np.uint8))
    assert state.pacman is None and state.ghosts == ()
    assert not state.walls.any() and not state.pellets.any()


def test_states_compare_arrays_by_value():
    first = parse_frame(PacmanEnv().reset(seed=0)[0])
    second = PacmanState(
        first.pacman, first.ghosts, first.pellets.copy(), first.walls.copy(), first.power_pellets
    )
    assert first == second
    fewer = first.pellets.copy()
    fewer[tuple(np.argwhere(fewer)[0])] = False
    third = PacmanState(first.pacman, first.ghosts, fewer, first.walls, first.power_pellets)
    assert first != third and first.differences(third) == ["pellets"]


@pytest.mark.parametrize(
    "frame",
    [np.zeros((64, 64), np.uint8), np.zeros((84, 84, 3), np.uint8), np.zeros((64, 64, 3), np.float32)],
)
def test_wrong_shape_or_dtype_is_refused(frame):
    with pytest.raises(ValueError, match=r"\(64, 64, 3\)"):
        parse_frame(frame)
