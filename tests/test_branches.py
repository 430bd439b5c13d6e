"""Branch targets: each recorded step replayed in the real game and branched under every key, encoded
into a cache beside the latents, and a share of each training batch given a random key and the real
next frame under it (flow.branch_fraction)."""

import contextlib
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import envs
import recorder
from recorder.record import make_recording_env
from worldmodel.branches import BranchError, branch_frames, build_branch_cache
from worldmodel.config import ConfigError, load_config
from worldmodel.data import build_latent_cache
from worldmodel.model import WorldModel
from worldmodel.training.stages import WindowBatches

REPOSITORY = Path(__file__).resolve().parents[1]
TINY = str(REPOSITORY / "configs" / "tiny.yaml")


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    """Two episodes of 30 steps of random keys: they press into walls, stop and turn."""
    path = tmp_path_factory.mktemp("data") / "pacman.h5"
    command = [sys.executable, "-m", "recorder", "--env", "Pacman-v0", "--episodes", "2", "--out", str(path)]
    command += ["--max-steps", "30", "--seed", "3", "--policy", "random"]
    subprocess.run(command, check=True, cwd=REPOSITORY, capture_output=True)
    return path


@pytest.fixture(scope="module")
def tiny_vae():
    return WorldModel.from_config(load_config(TINY), list(envs.ACTION_MEANINGS)).vae.eval()


def test_each_branch_is_the_games_next_frame_under_that_key(recording):
    game = make_recording_env("Pacman-v0")
    with recorder.load(recording) as trajectories:
        episode = trajectories.episode(0)
    branches = branch_frames(game, episode)
    keys = game.action_space.n
    assert branches.shape == (len(episode.actions), keys, *episode.frames.shape[1:])
    # The branch under the recorded key is the recording itself.
    recorded = branches[np.arange(len(episode.actions)), episode.actions]
    assert np.array_equal(recorded, episode.frames[1:])
    # Every other branch is what a fresh game replayed to that step does under that key.
    for step in (0, 11, 29):
        for key in range(keys):
            fresh = make_recording_env("Pacman-v0")
            fresh.reset(seed=int(episode.seed))
            for action in episode.actions[:step]:
                fresh.step(int(action))
            assert np.array_equal(fresh.step(key)[0], branches[step, key]), (step, key)
    # The keys do lead to different frames: the branches are not copies of the recording.
    distinct = [len({frame.tobytes() for frame in branches[step]}) for step in range(len(branches))]
    assert max(distinct) >= 2


def test_a_recording_the_game_does_not_replay_is_refused_by_file_and_episode(recording):
    with recorder.load(recording) as trajectories:
        episode = trajectories.episode(1)
    episode.frames[7] = 255 - episode.frames[7]  # as if recorded by another version of the game
    with pytest.raises(BranchError, match=r"pacman\.h5: episode 1 does not replay .* at step 6"):
        branch_frames(make_recording_env("Pacman-v0"), episode, recording, 1)


def test_the_branch_cache_holds_every_key_and_is_reused_for_the_same_episodes(recording, tiny_vae, tmp_path):
    latents = build_latent_cache(tiny_vae, recording, tmp_path / "latents.safetensors", show_progress=False)
    path = tmp_path / "branches.safetensors"
    first = build_branch_cache(tiny_vae, recording, path, episodes=1, show_progress=False)
    steps = int(latents.length[0])
    assert first.shape == (steps, 5, *latents.latents.shape[1:]) and first.dtype == torch.float16
    # Under the recorded key, the branch latent is the recording's next latent (to float16's precision).
    recorded = first[torch.arange(steps), latents.actions[:steps]].float()
    assert torch.allclose(recorded, latents.latents[1 : steps + 1], atol=1e-2, rtol=1e-2)
    written = path.stat().st_mtime_ns
    assert torch.equal(build_branch_cache(tiny_vae, recording, path, episodes=1, show_progress=False), first)
    assert path.stat().st_mtime_ns == written  # read back, not replayed again
    # All episodes, replayed by two worker processes: the first episode's branches are the same.
    both = build_branch_cache(tiny_vae, recording, path, episodes=0, workers=2, show_progress=False)
    assert len(both) == int(latents.length.sum()) and torch.equal(both[:steps], first)


def fake_run(recording: Path, run_dir: Path, vae, *overrides: str) -> SimpleNamespace:
    """What WindowBatches reads of a TrainingRun, on the CPU, with every episode trained on."""
    accelerator = SimpleNamespace(
        device="cpu", is_main_process=True, main_process_first=contextlib.nullcontext
    )
    config = load_config(TINY, list(overrides))
    return SimpleNamespace(
        config=config,
        accelerator=accelerator,
        model=SimpleNamespace(vae=vae),
        data_path=recording,
        run_dir=run_dir,
        train_ids=[0, 1],
    )


def test_branched_windows_carry_a_random_key_and_the_real_next_latent_under_it(recording, tiny_vae, tmp_path):
    run = fake_run(recording, tmp_path, tiny_vae, "flow.branch_fraction=0.5", "flow.branch_episodes=1")
    cache = build_latent_cache(tiny_vae, recording, tmp_path / "latents.safetensors", show_progress=False)
    batches = WindowBatches(run, cache, sampler=None)
    keys_drawn = set()
    for draw in range(8):
        windows, history, target, actions = batches.draw(16, draw, denoiser=None)
        plain_history, plain_target, plain_actions = cache.history_batch(windows, 2, 6)
        assert torch.equal(history, plain_history) and torch.equal(actions[:, :-1], plain_actions[:, :-1])
        # The first half is the recording as it was.
        assert torch.equal(target[:8], plain_target[:8]) and torch.equal(actions[:8], plain_actions[:8])
        # The second half comes from the branched episode, each with its key's branch as the target.
        assert (windows[8:, 0] == 0).all()
        steps = torch.from_numpy(windows[8:, 1] + 2 - 1)
        assert torch.equal(target[8:], batches.branches[steps, actions[8:, -1]].float())
        same_key = actions[8:, -1] == plain_actions[8:, -1]  # where the drawn key is the one recorded
        assert torch.allclose(target[8:][same_key], plain_target[8:][same_key], atol=1e-2, rtol=1e-2)
        keys_drawn.update(actions[8:, -1].tolist())
    assert keys_drawn == set(range(5))


def test_branch_settings_that_cannot_work_are_refused_before_training(recording, tiny_vae, tmp_path):
    cache = build_latent_cache(tiny_vae, recording, tmp_path / "latents.safetensors", show_progress=False)
    with pytest.raises(ConfigError, match=r"flow.branch_fraction must be in \[0, 1\], got 1.5"):
        WindowBatches(fake_run(recording, tmp_path, tiny_vae, "flow.branch_fraction=1.5"), cache, None)
    negative = fake_run(recording, tmp_path, tiny_vae, "flow.branch_fraction=0.5", "flow.branch_episodes=-1")
    with pytest.raises(ConfigError, match="flow.branch_episodes must be 0 .every episode. or more, got -1"):
        WindowBatches(negative, cache, None)
    only_held_out = fake_run(
        recording, tmp_path, tiny_vae, "flow.branch_fraction=0.5", "flow.branch_episodes=1"
    )
    only_held_out.train_ids = [1]  # the one branched episode is held out
    with pytest.raises(ConfigError, match="flow.branch_episodes=1 covers no training window"):
        WindowBatches(only_held_out, cache, None)


def test_a_damaged_branch_cache_is_rebuilt_with_a_warning(recording, tiny_vae, tmp_path):
    path = tmp_path / "branches.safetensors"
    built = build_branch_cache(tiny_vae, recording, path, episodes=1, show_progress=False)
    path.write_bytes(path.read_bytes()[:100])  # a kill or a full disk cut the file short
    with pytest.warns(UserWarning, match="is not a branch cache this version wrote.*Rebuilding it"):
        rebuilt = build_branch_cache(tiny_vae, recording, path, episodes=1, show_progress=False)
    assert torch.equal(rebuilt, built)
