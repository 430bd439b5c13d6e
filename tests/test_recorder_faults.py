"""The recorder under faults a user meets: a full disk (a real small tmpfs where the machine lets us mount
one, an injected write error always), two writers through two names of one file, a killed parallel run
then an append, Ctrl-C with workers; and the real game refusing malformed actions."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import gymnasium
import h5py
import numpy as np
import pytest

import envs  # noqa: F401  (registers Pacman-v0)
import recorder
from recorder.record import seeds_to_record
from tests.fake_game import FAKE_ENV_ID

ROOT = Path(__file__).resolve().parents[1]
MEANINGS = ["NOOP", "UP", "RIGHT", "LEFT", "DOWN"]
# The same recorder with its free-space check off, to reach a real "No space left on device" from HDF5.
WITHOUT_SPACE_CHECK = (
    "import sys, recorder.writer as w; w.SPACE_MARGIN = w.SPACE_RESERVE = 0; "
    "from recorder.__main__ import main; sys.exit(main(sys.argv[1:]))"
)


def cli(*args: str, module: str = "recorder", timeout: float = 120) -> subprocess.CompletedProcess:
    command = (
        [sys.executable, "-c", WITHOUT_SPACE_CHECK]
        if module == "unchecked"
        else [sys.executable, "-m", module]
    )
    return subprocess.run([*command, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def random_episode(rng: np.random.Generator, seed: int, size: int = 8) -> dict:
    length = int(rng.integers(3, 12))
    return {
        "frames": rng.integers(0, 256, (length + 1, size, size, 3), dtype=np.uint8),
        "actions": rng.integers(0, 5, length),
        "rewards": rng.random(length).astype(np.float32),
        "terminated": np.arange(length) == length - 1,
        "truncated": np.zeros(length, bool),
        "seed": seed,
    }


def assert_intact(path: Path, written: list[dict] | None = None) -> recorder.TrajectoryFile:
    """Every committed episode reads back and matches its checksums (and `written`, if given)."""
    with recorder.load(path) as trajectories:
        seeds = trajectories.seeds.tolist()
        assert len(set(seeds)) == len(seeds), f"a seed is recorded twice: {seeds}"
        for i in range(len(trajectories)):
            episode = trajectories.episode(i)
            if written is not None:
                for name in ("frames", "actions", "rewards", "terminated", "truncated"):
                    np.testing.assert_array_equal(getattr(episode, name), written[i][name])
    return trajectories


def committed_lines(text: str) -> int:
    return sum(line.startswith("committed episode") for line in text.splitlines())


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs (needs root and a kernel that lets us mount), else the test is skipped."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    try:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
            capture_output=True,
            text=True,
        )
        problem = (result.stderr.strip() or f"mount exited {result.returncode}") if result.returncode else ""
    except OSError as error:  # no mount command
        problem = str(error)
    if problem:
        pytest.skip(
            f"cannot mount a small tmpfs here ({problem}); the injected write errors "
            "(test_a_write_error_at_any_stage_leaves_the_committed_episodes) cover the same path"
        )
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.mark.parametrize("space_check", ["on", "off"])
def test_full_disk_stops_cleanly_keeps_committed_episodes_and_appends_after(small_disk, space_check):
    out = small_disk / "pacman.h5"
    args = [
        "--env",
        "Pacman-v0",
        "--episodes",
        "1000",
        "--max-steps",
        "40",
        "--out",
        str(out),
        "--log-episodes",
    ]
    result = cli(*args, module="recorder" if space_check == "on" else "unchecked")
    # Before: every episode "committed", then a segfault, with 65 of 100 episodes black frames.
    assert result.returncode == 2, result.stderr[-2000:]
    assert "the disk is full" in result.stderr and str(out) in result.stderr and "--out" in result.stderr
    assert "Traceback" not in result.stderr
    trajectories = assert_intact(out)
    assert len(trajectories) == committed_lines(result.stdout) > 0

    subprocess.run(["mount", "-o", "remount,size=4m", str(small_disk)], check=True)
    appended = cli("--env", "Pacman-v0", "--episodes", "3", "--max-steps", "40", "--out", str(out))
    assert appended.returncode == 0, appended.stderr[-2000:]
    after = assert_intact(out)
    assert len(after) == len(trajectories) + 3
    assert sorted(after.seeds.tolist()) == list(range(len(after)))


@pytest.mark.parametrize("failing", ["frames", "actions", "episodes/checksum", "episodes/length"])
def test_a_write_error_at_any_stage_leaves_the_committed_episodes(tmp_path, monkeypatch, failing):
    path, rng = tmp_path / "fake.h5", np.random.default_rng(0)
    written = [random_episode(rng, seed) for seed in range(4)]
    real_flush, armed = h5py.Dataset.flush, {"on": False}

    def flush(dataset):
        if armed["on"] and dataset.name == f"/{failing}":
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        real_flush(dataset)

    monkeypatch.setattr(h5py.Dataset, "flush", flush)
    writer = recorder.TrajectoryWriter(path, "FakeImage-v0", MEANINGS, (8, 8), 15)
    for episode in written[:2]:
        writer.add_episode(**episode)
    armed["on"] = True
    with pytest.raises(
        recorder.TrajectoryWriteError, match="disk is full.*keeps the 2 episodes.*another --out"
    ) as error:
        writer.add_episode(**written[2])
    assert str(path) in str(error.value)
    with pytest.raises(recorder.TrajectoryWriteError, match="closed"):
        writer.add_episode(**written[3])
    writer.close()
    armed["on"] = False

    assert len(assert_intact(path, written[:2])) == 2
    with recorder.TrajectoryWriter(path, "FakeImage-v0", MEANINGS, (8, 8), 15) as again:
        again.add_episode(**written[2])
    assert len(assert_intact(path, written[:3])) == 3


def test_a_file_hdf5_cannot_even_roll_back_is_left_as_after_a_kill(tmp_path, monkeypatch):
    path, rng = tmp_path / "fake.h5", np.random.default_rng(2)
    written = [random_episode(rng, seed) for seed in range(3)]
    writer = recorder.TrajectoryWriter(path, "FakeImage-v0", MEANINGS, (8, 8), 15)
    writer.add_episode(**written[0])

    def fail(*args):
        raise OSError(errno.EIO, "Input/output error (injected)")

    monkeypatch.setattr(h5py.Dataset, "flush", fail)
    monkeypatch.setattr(h5py.File, "flush", fail)
    with pytest.raises(recorder.TrajectoryWriteError, match="Input/output error.*keeps the 1 episodes"):
        writer.add_episode(**written[1])
    monkeypatch.undo()
    with pytest.raises(recorder.TrajectoryFormatError, match="from a new process"):
        recorder.TrajectoryWriter(path, "FakeImage-v0", MEANINGS, (8, 8), 15)
    # A new process appends to exactly the committed episode, as after a kill.
    append = (
        "import sys, numpy as np, recorder; "
        "w = recorder.TrajectoryWriter(sys.argv[1], 'FakeImage-v0', list('NURLD'), (8, 8)); "
        "w.add_episode(np.zeros((3, 8, 8, 3)), [1, 2], [0, 0], [False, True], [False, False], seed=7); w.close()"
    )
    subprocess.run(
        [sys.executable, "-c", append.replace("list('NURLD')", repr(MEANINGS)), str(path)], check=True
    )
    # Read from a new process too: this one refuses, as HDF5 keeps the file as it last saw it.
    with pytest.raises(recorder.TrajectoryFormatError, match="from a new process"):
        recorder.load(path)
    read = "import sys, recorder; t = recorder.load(sys.argv[1]); t.episode(0); t.episode(1); print(t.seeds.tolist())"
    result = subprocess.run([sys.executable, "-c", read, str(path)], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.strip() == "[0, 7]", result.stderr


def test_no_room_for_the_next_episode_is_refused_before_writing(tmp_path, monkeypatch):
    path, rng = tmp_path / "fake.h5", np.random.default_rng(1)
    with recorder.TrajectoryWriter(path, "FakeImage-v0", MEANINGS, (8, 8), 15) as writer:
        writer.add_episode(**random_episode(rng, 0))
        monkeypatch.setattr("shutil.disk_usage", lambda _: SimpleNamespace(free=1000))
        with pytest.raises(recorder.TrajectoryWriteError, match="disk is full.*keeps its 1 committed"):
            writer.add_episode(**random_episode(rng, 1))
        monkeypatch.undo()
        writer.add_episode(**random_episode(rng, 2))  # nothing was written: the writer goes on
    assert assert_intact(path).seeds.tolist() == [0, 2]


def test_one_writer_per_file_whatever_its_name(tmp_path):
    out = tmp_path / "data" / "pacman.h5"
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "link.h5").symlink_to(out)
    (tmp_path / "dirlink").symlink_to(tmp_path / "data")
    with recorder.TrajectoryWriter(out, "FakeImage-v0", MEANINGS, (8, 8), 15) as writer:
        writer.add_episode(**random_episode(np.random.default_rng(0), 0))
        for other in (
            tmp_path / "link.h5",
            tmp_path / "data" / "sub" / ".." / "pacman.h5",
            tmp_path / "dirlink" / "pacman.h5",
        ):
            with pytest.raises(recorder.TrajectoryFormatError, match="another recorder is writing"):
                recorder.TrajectoryWriter(other, "FakeImage-v0", MEANINGS, (8, 8), 15)
        # Before: the second recorder took its own lock, rewrote the live file and both died.
        result = cli(
            "--env", FAKE_ENV_ID, "--episodes", "1", "--policy", "random", "--out", str(tmp_path / "link.h5")
        )
        assert result.returncode == 2 and "another recorder is writing" in result.stderr, result.stderr
        assert f"that is {out}" in result.stderr and "Traceback" not in result.stderr
    assert len(assert_intact(out)) == 1


def test_killed_parallel_run_then_append_never_repeats_a_seed_and_fills_gaps(tmp_path):
    out, log = tmp_path / "fake.h5", tmp_path / "run.log"
    command = [sys.executable, "-m", "recorder", "--env", FAKE_ENV_ID, "--policy", "random", "--workers", "2"]
    command += ["--episodes", "100000", "--out", str(out), "--log-episodes"]
    with open(log, "w") as stdout:
        process = subprocess.Popen(command, cwd=ROOT, stdout=stdout, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while committed_lines(log.read_text()) < 8 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.kill()
    process.wait()
    killed = assert_intact(out).seeds.tolist()
    assert len(killed) >= 8
    appended = cli(
        "--env", FAKE_ENV_ID, "--policy", "random", "--workers", "2", "--episodes", "6", "--out", str(out)
    )
    assert appended.returncode == 0, appended.stderr
    seeds = assert_intact(out).seeds.tolist()
    # At most 2 seeds per worker are in flight, so at most 4 gaps: 6 new episodes fill them all.
    assert len(seeds) == len(killed) + 6 and sorted(seeds) == list(range(len(seeds)))


def test_an_append_fills_the_gaps_first(tmp_path):
    out, rng = tmp_path / "fake.h5", np.random.default_rng(0)
    with recorder.TrajectoryWriter(out, FAKE_ENV_ID, MEANINGS, (64, 64), 15) as writer:
        for seed in (10, 11, 13, 15):
            writer.add_episode(**random_episode(rng, seed, size=64))
        with pytest.raises(recorder.TrajectoryFormatError, match="seed 13 is already recorded"):
            writer.add_episode(**random_episode(rng, 13, size=64))
    assert seeds_to_record({10, 11, 13, 15}, 10, 4) == [12, 14, 16, 17]
    result = cli(
        "--env", FAKE_ENV_ID, "--policy", "random", "--seed", "10", "--episodes", "3", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert assert_intact(out).seeds.tolist() == [10, 11, 13, 15, 12, 14, 16]


def test_held_out_split_never_shares_a_seed_with_training():
    seeds = [5, 6, 7, 5, 8, 9, 6, 10, 11, 12]
    for split_seed in range(20):
        train, held_out = recorder.split_episodes(len(seeds), 0.3, split_seed, seeds=seeds)
        assert sorted(train + held_out) == list(range(len(seeds))) and held_out
        assert not {seeds[i] for i in train} & {seeds[i] for i in held_out}
    unique = list(range(20))
    assert recorder.split_episodes(20, 0.2, 3, seeds=unique) == recorder.split_episodes(20, 0.2, 3)


@pytest.mark.parametrize("target", ["process group", "main process"])
def test_ctrl_c_stops_a_parallel_recording_and_keeps_its_episodes(tmp_path, target):
    out, log = tmp_path / "pacman.h5", tmp_path / "run.log"
    command = [sys.executable, "-m", "recorder", "--env", "Pacman-v0", "--workers", "2", "--max-steps", "25"]
    command += ["--episodes", "100000", "--out", str(out), "--log-episodes"]
    with open(log, "w") as output:
        # A session of its own, so a SIGINT to its group reaches it and its workers as a terminal's would.
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=output, start_new_session=True)
    deadline = time.monotonic() + 60
    while committed_lines(log.read_text()) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    (os.killpg if target == "process group" else os.kill)(process.pid, signal.SIGINT)
    try:
        returncode = process.wait(timeout=20)  # before: 3 of 6 runs went on recording to the end
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("Ctrl-C did not stop the recording")
    text = log.read_text()
    assert returncode == 130 and "interrupted: kept" in text and "Traceback" not in text, text[-3000:]
    assert len(assert_intact(out)) >= committed_lines(text) >= 3


@pytest.mark.parametrize("action", [2.5, True, np.True_, "1", np.float64(1.0), np.array([1]), None])
def test_real_game_refuses_actions_that_are_not_integers(action):
    env = gymnasium.make("Pacman-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action must be an integer"):
        env.step(action)
    for fine in (1, np.int64(2), np.uint8(3), np.array(4)):
        env.step(fine)


def test_real_game_refuses_a_step_after_the_end_and_unknown_reset_options():
    env = gymnasium.make("Pacman-v0").unwrapped
    env.reset(seed=0)
    terminated = False
    while not terminated:
        terminated = env.step(0)[2]
    with pytest.raises(RuntimeError, match="after the episode terminated.*reset"):
        env.step(0)
    env.reset(seed=0)
    env.step(0)  # reset starts a new episode
    with pytest.raises(ValueError, match="takes no options"):
        env.reset(options={"difficulty": 2})
    env.reset(seed=0, options={})
