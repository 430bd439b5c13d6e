"""A recorder killed with SIGKILL at random moments leaves a file that opens, holds every episode
it reported committed, byte for byte, and that the next run appends to."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import recorder
from recorder.policies import make_policy
from recorder.record import make_recording_env, run_episode

ROOT = Path(__file__).resolve().parents[1]
MAX_STEPS = 25


def committed_lines(log: Path) -> int:
    return sum(line.startswith("committed episode") for line in log.read_text().splitlines())


def record_until_killed(out: Path, log: Path, rng: random.Random) -> int:
    """Start a long recording, SIGKILL it at a random moment, return how many episodes it reported."""
    command = [sys.executable, "-m", "recorder", "--env", "Pacman-v0", "--episodes", "100000"]
    command += ["--max-steps", str(MAX_STEPS), "--out", str(out), "--log-episodes"]
    with open(log, "w") as stdout:
        process = subprocess.Popen(command, cwd=ROOT, stdout=stdout, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while committed_lines(log) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.4))
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return committed_lines(log)


def test_sigkilled_recorder_keeps_committed_episodes_and_appends(tmp_path):
    out, rng = tmp_path / "pacman.h5", random.Random(1234)
    env = make_recording_env("Pacman-v0")
    policy = make_policy("explore", env, seed=0, env_id="Pacman-v0")
    reported_total = 0
    for kill in range(4):
        reported_total += record_until_killed(out, tmp_path / f"run{kill}.log", rng)
        with recorder.load(out) as trajectories:
            # Killed between the write of an episode and its log line, the file may hold one more.
            assert len(trajectories) >= reported_total
            reported_total = len(trajectories)
            assert trajectories.seeds.tolist() == list(range(len(trajectories)))
            checked = {0, len(trajectories) - 1, *rng.sample(range(len(trajectories)), 3)}
            for i in sorted(checked):
                stored = trajectories.episode(i)
                fresh = run_episode(env, policy, int(stored.seed), MAX_STEPS, "explore")
                np.testing.assert_array_equal(stored.frames, fresh["frames"])
                np.testing.assert_array_equal(stored.actions, fresh["actions"])
                np.testing.assert_array_equal(stored.rewards, fresh["rewards"])
    env.close()
