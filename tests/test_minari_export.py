"""Exporting a trajectory file to Minari keeps every observation and action, and bad dataset ids
are refused with a clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

import recorder
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
    assert result.returncode == 0, result.stderr

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
