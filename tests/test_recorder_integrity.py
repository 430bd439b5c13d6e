"""Damaged recordings: a flipped byte in any kind of dataset is detected, named (file, episode, dataset)
and skippable; `python -m recorder.check` reports and repairs; truncated and pre-checksum files."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import recorder
from recorder.check import main as check
from tests.test_recorder_faults import MEANINGS, random_episode

ROOT = Path(__file__).resolve().parents[1]
DAMAGED_ROW = 2


def write(path: Path, count: int = 5) -> list[dict]:
    rng = np.random.default_rng(0)
    episodes = [random_episode(rng, seed) for seed in range(count)]
    with recorder.TrajectoryWriter(path, "FakeImage-v0", MEANINGS, (8, 8), 15) as writer:
        for episode in episodes:
            writer.add_episode(**episode)
    return episodes


def flip_bit(path: Path, name: str, element: int) -> None:
    """Flip one stored bit of `name` at `element` (somewhere in its chunk, if the chunk is compressed)."""
    with h5py.File(path, "r") as f:
        dataset = f[name]
        rows = dataset.chunks[0]
        info = dataset.id.get_chunk_info_by_coord((element // rows * rows,) + (0,) * (dataset.ndim - 1))
        row_bytes = dataset.dtype.itemsize * int(np.prod(dataset.chunks[1:]))
        offset = info.byte_offset + (info.size // 2 if dataset.compression else element % rows * row_bytes)
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([byte ^ 1]))


def damaged_element(path: Path, name: str) -> int:
    with recorder.load(path) as trajectories:
        if name.startswith("episodes/"):
            return DAMAGED_ROW
        if name == "frames":
            return int(trajectories.frame_start[DAMAGED_ROW]) + 1
        return int(trajectories.step_start[DAMAGED_ROW] + trajectories.lengths[DAMAGED_ROW] - 1)


DATASETS = ["frames", "actions", "rewards", "terminated", "truncated", "episodes/length", "episodes/seed"]


@pytest.mark.parametrize("name", [*DATASETS, "episodes/checksum"])
def test_a_flipped_bit_is_detected_named_and_skippable(tmp_path, name, capsys):
    path = tmp_path / "fake.h5"
    written = write(path)
    flip_bit(path, name, damaged_element(path, name))  # before: actions, rewards, lengths read back silently

    if name.startswith("episodes/"):  # the index tells where every episode is: refused at open
        with pytest.raises(recorder.DamagedEpisodeError) as error:
            recorder.load(path)
    else:
        with recorder.load(path) as trajectories, pytest.raises(recorder.DamagedEpisodeError) as error:
            for i in range(len(trajectories)):
                trajectories.episode(i)
    assert error.value.episode == DAMAGED_ROW and name in error.value.datasets
    assert str(path) in str(error.value) and "recorder.check" in str(error.value)

    intact = [episode for i, episode in enumerate(written) if i != DAMAGED_ROW]
    with recorder.load(path, on_damage="skip") as trajectories:
        assert trajectories.seeds.tolist() == [episode["seed"] for episode in intact]
        assert [e.episode for e in trajectories.damaged] == [DAMAGED_ROW]
        for i, episode in enumerate(intact):
            np.testing.assert_array_equal(trajectories.episode(i).frames, episode["frames"])
    windows = recorder.WindowDataset(path, 2, on_damage="skip")
    assert len(windows) == sum(len(episode["actions"]) for episode in intact)
    assert {windows[i]["episode"] for i in range(len(windows))} == set(range(len(intact)))

    repaired = tmp_path / "repaired.h5"
    assert check([str(path), "--repair", str(repaired)]) == 1
    report = capsys.readouterr().out
    assert (
        f"episode {DAMAGED_ROW}: DAMAGED in" in report and name in report and "4 intact, 1 damaged" in report
    )
    assert check([str(repaired)]) == 0
    with recorder.load(repaired) as trajectories:
        assert len(trajectories) == len(intact)
        for i, episode in enumerate(intact):
            np.testing.assert_array_equal(trajectories.episode(i).actions, episode["actions"])


def test_damage_errors_survive_pickling_for_dataloader_workers(tmp_path):
    error = recorder.DamagedEpisodeError.of(tmp_path / "x.h5", 3, ["frames"], "cannot be read")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.episode, copy.datasets, str(copy)) == (3, ["frames"], str(error))
    assert isinstance(recorder.DamagedEpisodeError("a worker's message"), recorder.TrajectoryFormatError)


def test_a_truncated_file_is_reported_and_its_intact_episodes_rescued(tmp_path):
    path = tmp_path / "fake.h5"
    written = write(path, count=8)
    os.truncate(path, os.path.getsize(path) * 3 // 4)  # before: loaded, then a bare OSError later
    with pytest.raises(recorder.TrajectoryFormatError, match="truncated.*bytes short.*recorder.check"):
        recorder.load(path)
    with recorder.load(path, on_damage="skip") as trajectories:
        assert trajectories.missing_bytes > 0
        for i, row in enumerate(trajectories.rows):
            np.testing.assert_array_equal(trajectories.episode(i).frames, written[row]["frames"])
    for command in (
        ["recorder.check", str(path)],
        ["recorder", "--env", "Pacman-v0", "--episodes", "1", "--out", str(path)],
    ):
        result = subprocess.run(
            [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert result.returncode in (1, 2) and "truncated" in result.stdout + result.stderr
        assert "Traceback" not in result.stderr, result.stderr


def test_files_from_before_checksums_still_read_append_and_repair(tmp_path, capsys):
    path = tmp_path / "old.h5"
    written = write(path, count=3)
    with h5py.File(path, "a") as f:  # the version-1 layout: no checksum column
        del f["episodes/checksum"]
        f.attrs["format_version"] = 1
    rng = np.random.default_rng(5)
    extra = random_episode(rng, 3)
    with recorder.TrajectoryWriter(path, "FakeImage-v0", MEANINGS, (8, 8), 15) as writer:
        writer.add_episode(**extra)
    with recorder.load(path) as trajectories:
        assert not trajectories.has_checksums and len(trajectories) == 4
        for i, episode in enumerate([*written, extra]):
            np.testing.assert_array_equal(trajectories.episode(i).frames, episode["frames"])
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == 1 and "checksum" not in f["episodes"]
    assert check([str(path), "--repair", str(tmp_path / "new.h5")]) == 0
    assert "no checksums" in capsys.readouterr().out
    with recorder.load(tmp_path / "new.h5") as trajectories:
        assert trajectories.has_checksums and len(trajectories) == 4


def test_check_refuses_to_overwrite_and_names_unreadable_files(tmp_path, capsys):
    path = tmp_path / "fake.h5"
    write(path, count=2)
    assert check([str(path), "--repair", str(path)]) == 2
    (tmp_path / "notes.h5").write_text("not a trajectory file")
    assert check([str(tmp_path / "notes.h5")]) == 2
    assert check([str(path), "--repair", str(tmp_path / "notes.h5")]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and all(line.startswith("error: ") for line in errors)
    assert "new file" in errors[0] and "not an HDF5 file" in errors[1] and "already exists" in errors[2]
