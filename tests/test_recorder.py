"""Recorder behaviour users rely on: what is written reads back unchanged, files append, windows
index correctly in DataLoader workers, and bad input gives a clear message instead of a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import recorder
from recorder.record import make_recording_env, run_episode
from tests.fake_game import FAKE_ENV_ID, FakeImageEnv

ROOT = Path(__file__).resolve().parents[1]


def record_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recorder", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def write_fake_episodes(path: Path, seeds) -> list[dict]:
    env = FakeImageEnv()
    episodes = [run_episode(env, lambda obs: int(obs[0, 0, 0]) % 5, seed, None, "test") for seed in seeds]
    with recorder.TrajectoryWriter(path, "FakeImage-v0", env.get_action_meanings(), (8, 8), 15) as writer:
        for episode in episodes:
            writer.add_episode(**episode)
    return episodes


def assert_same_episode(read: recorder.Episode, written: dict) -> None:
    for name in ("frames", "actions", "rewards", "terminated", "truncated"):
        np.testing.assert_array_equal(getattr(read, name), written[name])
    assert read.seed == written["seed"]


def test_round_trip_and_append(tmp_path):
    path = tmp_path / "sub" / "fake.h5"
    first = write_fake_episodes(path, [0, 1, 2])
    second = write_fake_episodes(path, [3, 4])
    with recorder.load(path) as trajectories:
        assert len(trajectories) == 5
        assert trajectories.env_id == "FakeImage-v0"
        assert trajectories.action_meanings == ["NOOP", "UP", "RIGHT", "LEFT", "DOWN"]
        assert trajectories.frame_size == (8, 8) and trajectories.fps == 15
        assert trajectories.num_steps == sum(len(e["actions"]) for e in first + second)
        assert trajectories.num_frames == trajectories.num_steps + 5
        for i, written in enumerate(first + second):
            assert_same_episode(trajectories.episode(i), written)


def test_append_refuses_a_different_recording(tmp_path):
    path = tmp_path / "fake.h5"
    write_fake_episodes(path, [0])
    with pytest.raises(recorder.TrajectoryFormatError, match="cannot append.*env id"):
        recorder.TrajectoryWriter(path, "Other-v0", ["NOOP", "UP", "RIGHT", "LEFT", "DOWN"], (8, 8), 15)
    with pytest.raises(recorder.TrajectoryFormatError, match="frame size"):
        recorder.TrajectoryWriter(path, "FakeImage-v0", ["NOOP", "UP", "RIGHT", "LEFT", "DOWN"], (16, 16), 15)


def test_windows_hold_frames_and_the_actions_that_produced_them(tmp_path):
    path = tmp_path / "fake.h5"
    episodes = write_fake_episodes(path, [0, 1, 2])
    window = 3
    dataset = recorder.WindowDataset(path, window)
    assert len(dataset) == sum(len(e["frames"]) - window + 1 for e in episodes)
    seen = set()
    for item in dataset:
        episode, start = episodes[item["episode"]], item["frame_index"]
        np.testing.assert_array_equal(item["frames"].numpy(), episode["frames"][start : start + window])
        produced_by = [0 if k == 0 else episode["actions"][k - 1] for k in range(start, start + window)]
        assert item["actions"].tolist() == produced_by
        last_step = start + window - 2
        assert item["reward"].item() == episode["rewards"][last_step]
        assert item["terminated"].item() == episode["terminated"][last_step]
        seen.add((item["episode"], start))
    assert len(seen) == len(dataset)

    held_in = recorder.WindowDataset(path, window, episodes=[2])
    assert {held_in[i]["episode"] for i in range(len(held_in))} == {2}
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_windows_load_in_dataloader_workers(tmp_path):
    path = tmp_path / "fake.h5"
    write_fake_episodes(path, range(6))
    dataset = recorder.WindowDataset(path, 2)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=True, num_workers=2)
    batches = list(loader)
    assert sum(len(b["episode"]) for b in batches) == len(dataset)
    assert batches[0]["frames"].shape[1:] == (2, 8, 8, 3) and batches[0]["frames"].dtype == torch.uint8
    assert batches[0]["actions"].dtype == torch.int64


def test_split_episodes_is_deterministic_and_disjoint():
    train, held_out = recorder.split_episodes(20, 0.2, seed=3)
    assert (train, held_out) == recorder.split_episodes(20, 0.2, seed=3)
    assert len(held_out) == 4 and sorted(train + held_out) == list(range(20))
    assert recorder.split_episodes(3, 0.1, seed=0)[1] != []


def test_cli_records_and_appends_with_seed_offsets(tmp_path):
    out = tmp_path / "new_dir" / "fake.h5"
    args = ["--env", FAKE_ENV_ID, "--episodes", "3", "--out", str(out), "--seed", "10", "--policy", "random"]
    assert record_cli(*args).returncode == 0
    assert record_cli(*args, "--workers", "2").returncode == 0
    with recorder.load(out) as trajectories:
        assert sorted(trajectories.seeds.tolist()) == list(range(10, 16))
        env = make_recording_env(FAKE_ENV_ID)
        for i in range(len(trajectories)):
            episode = trajectories.episode(i)
            np.testing.assert_array_equal(episode.frames[0], env.reset(seed=episode.seed)[0])
            assert (episode.frames[1:, 0, 0, 1] == episode.actions).all()


def test_cli_rejects_bad_input_with_one_clear_line(tmp_path):
    text_file = tmp_path / "notes.h5"
    text_file.write_text("not a trajectory file")
    other_layout = tmp_path / "other.h5"
    with h5py.File(other_layout, "w") as f:
        f["images"] = np.zeros(3)
    out = str(tmp_path / "x.h5")
    cases = {
        "cannot make env": ["--env", "NoSuchGame-v0", "--out", out],
        "image": ["--env", "CartPole-v1", "--out", out],
        "not an HDF5 file": ["--env", FAKE_ENV_ID, "--out", str(text_file)],
        "another layout": ["--env", FAKE_ENV_ID, "--out", str(other_layout)],
        "cannot create": ["--env", FAKE_ENV_ID, "--out", str(text_file / "x.h5")],
        "unknown policy": ["--env", FAKE_ENV_ID, "--out", out, "--policy", "greedy"],
        "outside 0..4": ["--env", FAKE_ENV_ID, "--out", out, "--policy", "tests.fake_game:bad_policy"],
    }
    for message, args in cases.items():
        result = record_cli(*args, "--episodes", "1")
        assert result.returncode == 2, (message, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_load_errors_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(recorder.TrajectoryFormatError, match="no such file"):
        recorder.load(tmp_path / "missing.h5")
    newer = tmp_path / "newer.h5"
    write_fake_episodes(newer, [0])
    with h5py.File(newer, "a") as f:
        f.attrs["format_version"] = recorder.FORMAT_VERSION + 1
    with pytest.raises(recorder.TrajectoryFormatError, match="newer.h5.*newer than this code"):
        recorder.load(newer)


def test_ms_pacman_records_at_64x64_with_5_actions(tmp_path):
    envs = pytest.importorskip("envs")
    if not hasattr(envs, "make_env"):
        pytest.skip("envs.make_env not available yet")
    out = tmp_path / "mspacman.h5"
    result = record_cli("--env", "ALE/MsPacman-v5", "--episodes", "1", "--max-steps", "20", "--out", str(out))
    assert result.returncode == 0, result.stderr
    with recorder.load(out) as trajectories:
        episode = trajectories.episode(0)
        assert episode.frames.shape == (21, 64, 64, 3) and episode.truncated[-1]
        assert len(trajectories.action_meanings) == 5
