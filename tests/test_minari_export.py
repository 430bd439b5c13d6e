"""Exporting a trajectory file to Minari keeps every observation and action and the spec of the
recorded env (our Pacman, or an ALE game through our adapters), so that recover_environment() plays
the same episodes again; it prints no warnings, and bad dataset ids are refused with a clear message."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import recorder
from recorder.export_minari import export_minari
from recorder.policies import RandomPolicy
from recorder.record import action_meanings, make_recording_env, run_episode
from tests.test_recorder import write_fake_episodes

ROOT = Path(__file__).resolve().parents[1]


def export_cli(*args: str, datasets_dir: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "recorder.export_minari", *args, "--out-dir", str(datasets_dir)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_minari_export_round_trip(tmp_path, monkeypatch):
    datasets_dir = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(datasets_dir))
    path = tmp_path / "fake.h5"
    write_fake_episodes(path, [0, 1, 2])
    result = export_cli(str(path), "fake/explore-v0", datasets_dir=datasets_dir)
    # FakeImage-v0 is registered only inside the tests: its spec cannot be stored, and the CLI says how on
    assert result.returncode == 2 and "--no-env-spec" in result.stderr and "Traceback" not in result.stderr
    result = export_cli(str(path), "fake/explore-v0", "--no-env-spec", datasets_dir=datasets_dir)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # none of Minari's warnings

    import minari

    dataset = minari.load_dataset("fake/explore-v0")
    assert dataset.total_episodes == 3
    with recorder.load(path) as trajectories:
        for stored, exported in zip(
            (trajectories.episode(i) for i in range(3)), dataset.iterate_episodes(), strict=True
        ):
            np.testing.assert_array_equal(exported.observations, stored.frames)
            np.testing.assert_array_equal(exported.actions, stored.actions)
            np.testing.assert_array_equal(exported.rewards, stored.rewards)
            np.testing.assert_array_equal(exported.terminations, stored.terminated)


def test_minari_export_refuses_a_bad_dataset_id(tmp_path):
    path = tmp_path / "fake.h5"
    write_fake_episodes(path, [0])
    result = export_cli(str(path), "not a valid id", datasets_dir=tmp_path / "minari")
    assert result.returncode == 2
    assert "bad Minari dataset id" in result.stderr and "Traceback" not in result.stderr


def record_real_episodes(path: Path, env_id: str, seeds: list[int], steps: int) -> None:
    env = make_recording_env(env_id, frame_size=64)
    policy = RandomPolicy(int(env.action_space.n), seed=0)
    with recorder.TrajectoryWriter(path, env_id, action_meanings(env), (64, 64), 15) as writer:
        for seed in seeds:
            writer.add_episode(**run_episode(env, policy, seed, steps, "random"))
    env.close()


@pytest.mark.parametrize("env_id", ["Pacman-v0", "ALE/MsPacman-v5"])
def test_the_recovered_environment_replays_the_recorded_episodes(env_id, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    path = tmp_path / "recorded.h5"
    record_real_episodes(path, env_id, seeds=[3, 4], steps=12)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = export_minari(path, "game/random-v0")
    assert [str(warning.message) for warning in caught] == []

    env = dataset.recover_environment()
    assert env.spec.id == env_id
    assert env.observation_space.shape == (64, 64, 3) and env.action_space.n == 5
    assert env.get_wrapper_attr("action_meanings") == ("NOOP", "UP", "RIGHT", "LEFT", "DOWN")
    # The recovered env is the recorded one: from each episode's seed, its actions give its frames.
    for episode, seed in zip(dataset.iterate_episodes(), [3, 4], strict=True):
        frame, _ = env.reset(seed=seed)
        frames = [frame] + [env.step(int(action))[0] for action in episode.actions]
        np.testing.assert_array_equal(np.stack(frames), episode.observations)
    env.close()
