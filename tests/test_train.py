"""train.py end to end on a small recorded file with configs/tiny.yaml: a loadable checkpoint,
resume after a kill (bit for bit, also from a state of the earlier format), two processes launched as
the README says, clear errors for a run directory or data file that does not fit, and cache or state
files that would run code refused."""

import csv
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch
import yaml

import envs
import recorder
import train
from worldmodel import load
from worldmodel.config import ConfigError, load_config
from worldmodel.data import build_latent_cache
from worldmodel.distill import with_random_keys
from worldmodel.model import WorldModel
from worldmodel.training.state import EMA_FILE, read_ema_state

REPOSITORY = Path(__file__).resolve().parents[1]
TINY = str(REPOSITORY / "configs" / "tiny.yaml")
TINY_UNET = str(REPOSITORY / "configs" / "tiny-unet.yaml")  # the same with dit.backbone: unet


@pytest.fixture(scope="module")
def recorded_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "pacman.h5"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "recorder",
            "--env",
            "Pacman-v0",
            "--episodes",
            "4",
            "--out",
            str(path),
            "--max-steps",
            "30",
            "--seed",
            "0",
        ],
        check=True,
        cwd=REPOSITORY,
        capture_output=True,
    )
    return path


@pytest.fixture(scope="module")
def trained_run(recorded_file, tmp_path_factory) -> Path:
    """A run directory after ``train.py`` trained all three stages of the tiny config."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    assert train.main(["--config", TINY, "--data", str(recorded_file), "--out", str(run_dir)]) == 0
    return run_dir


def test_train_all_stages_writes_a_loadable_checkpoint(trained_run, recorded_file):
    run_dir = trained_run
    model = load(run_dir / "checkpoint")
    assert set(model.settings.training["stages"]) == {"vae", "dit", "heads"}
    assert model.settings.env_id == "Pacman-v0"
    assert model.vae.config.scaling_factor != 1.0  # measured from the data
    history = torch.zeros(1, model.settings.history_length, model.settings.latent_channels, 16, 16)
    frame = model.decode(model.predict_next(history, torch.zeros(1, model.settings.action_window).long()))
    assert frame.shape == (1, 64, 64, 3)
    # What a person looks at: reconstructions, rollout GIFs, evaluation curves, TensorBoard logs.
    assert list((run_dir / "samples").glob("vae_step*.png"))
    assert list((run_dir / "samples").glob("dit_step*.gif"))
    assert "psnr_teacher_forced" in (run_dir / "dit_eval.csv").read_text()
    assert list((run_dir / "logs").rglob("events.out.tfevents*"))
    # The reward head's classes are the rewards the recording holds; the end threshold was chosen.
    with recorder.load(recorded_file) as trajectories:
        paid = {float(trajectories.episode(i).rewards.max(initial=0)) for i in range(len(trajectories))}
    assert paid <= set(model.heads.config.reward_values) and 0.0 in model.heads.config.reward_values
    assert 0 < model.end_threshold < 1


def test_one_stage_trains_on_from_where_a_full_run_stopped(recorded_file, trained_run, tmp_path):
    # The usual way to give the denoiser more time: the same --out, --stage dit, a higher step count.
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    before = load(run_dir / "checkpoint").denoiser.state_dict()
    command = ["--config", TINY, "--data", str(recorded_file), "--out", str(run_dir), "--stage", "dit"]
    assert train.main([*command, "train.dit.steps=6"]) == 0
    assert progress_step(run_dir, "dit") == 6
    model = load(run_dir / "checkpoint")
    assert model.settings.training["stages"]["dit"]["steps"] == 6
    after = model.denoiser.state_dict()
    assert any(not torch.equal(before[name], after[name]) for name in before)  # trained on, not reloaded


def test_a_new_run_starts_from_a_checkpoint_and_may_add_action_planes(
    recorded_file, trained_run, tmp_path, capsys
):
    def command(name, source=trained_run / "checkpoint"):
        out = str(tmp_path / name)
        return [
            "--config",
            TINY,
            "--data",
            str(recorded_file),
            "--out",
            out,
            "--stage",
            "dit",
            "--init-from",
            str(source),
        ]

    assert train.main([*command("deeper"), "dit.num_layers=3"]) == 2
    assert (
        "only dit.action_planes may be added, dit.wrap_edges changed, dit.num_layers lowered"
        in capsys.readouterr().err
    )
    assert train.main([*command("planes"), "dit.action_planes=true", "dit.wrap_edges=true"]) == 0
    model, source = load(tmp_path / "planes" / "checkpoint"), load(trained_run / "checkpoint")
    assert model.denoiser.action_planes and not source.denoiser.action_planes
    assert model.denoiser.wrap_edges and not source.denoiser.wrap_edges
    history = model.settings.training["initialised_from"]
    assert history["checkpoint"] == str(trained_run / "checkpoint")
    assert history["stages"] == source.settings.training["stages"]
    assert model.vae.config.scaling_factor == source.vae.config.scaling_factor  # the autoencoder carries over
    assert all(
        torch.equal(a, b) for a, b in zip(model.vae.parameters(), source.vae.parameters(), strict=True)
    )
    # A run from that run's checkpoint keeps the whole chain of runs behind its weights.
    planes = tmp_path / "planes" / "checkpoint"
    assert train.main([*command("again", planes), "dit.action_planes=true", "dit.wrap_edges=true"]) == 0
    history = load(tmp_path / "again" / "checkpoint").settings.training["initialised_from"]
    assert history["checkpoint"] == str(planes)
    assert history["initialised_from"]["checkpoint"] == str(trained_run / "checkpoint")


def test_a_run_from_a_checkpoint_with_other_sampler_defaults_says_which_it_records(
    recorded_file, trained_run, tmp_path, capsys
):
    out = tmp_path / "heads"
    command = ["--config", TINY, "--data", str(recorded_file), "--out", str(out), "--stage", "heads",
               "--init-from", str(trained_run / "checkpoint"), "sampler.sampling_steps=3"]  # fmt: skip
    assert train.main(command) == 0
    assert "plays with sampler" in capsys.readouterr().out  # the source's 1 step becomes 3
    assert load(out / "checkpoint").settings.config.sampler.sampling_steps == 3


def test_a_unet_backbone_trains_and_plays_as_world_model_v0(recorded_file, tmp_path):
    run_dir = tmp_path / "unet"
    assert train.main(["--config", TINY_UNET, "--data", str(recorded_file), "--out", str(run_dir)]) == 0
    checkpoint = run_dir / "checkpoint"
    model = load(checkpoint)
    assert model.settings.backbone == "unet"
    assert set(model.settings.training["stages"]) == {"vae", "dit", "heads"}
    dit_config = json.loads((checkpoint / "dit" / "config.json").read_text())
    assert dit_config["_class_name"] == "UNet2DConditionModel"
    env = gymnasium.make("WorldModel-v0", checkpoint=checkpoint)
    observation, _ = env.reset(seed=0)
    for action in (2, 2, 1):
        observation, reward, terminated, truncated, _ = env.step(action)
    assert observation.shape == (64, 64, 3) and isinstance(reward, float)
    env.close()


def test_a_run_cannot_start_from_a_checkpoint_of_another_backbone(
    recorded_file, trained_run, tmp_path, capsys
):
    command = ["--config", TINY_UNET, "--data", str(recorded_file), "--out", str(tmp_path / "unet")]
    command += ["--stage", "dit", "--init-from", str(trained_run / "checkpoint")]
    assert train.main(command) == 2
    assert "holds a 'sana' denoiser but the config asks for dit.backbone 'unet'" in capsys.readouterr().err
    vit = ["--config", TINY, "--data", str(recorded_file), "--out", str(tmp_path / "vit"), "dit.backbone=vit"]
    assert train.main(vit) == 2
    assert "unknown dit.backbone 'vit'; the backbones are sana, unet" in capsys.readouterr().err
    assert not (tmp_path / "vit").exists()  # refused before the run directory recorded the config


def test_a_run_begun_before_a_setting_existed_still_resumes(recorded_file, tmp_path):
    run_dir = tmp_path / "run"
    base = ["--config", TINY, "--data", str(recorded_file), "--out", str(run_dir), "--stage", "heads"]
    assert train.main([*base, "train.heads.steps=1"]) == 0
    stored = yaml.safe_load((run_dir / "config.yaml").read_text())
    del stored["dit"]["action_planes"]  # as written by a version of train.py that did not have it
    (run_dir / "config.yaml").write_text(yaml.safe_dump(stored))
    assert train.main([*base, "train.heads.steps=2"]) == 0
    assert progress_step(run_dir, "heads") == 2


def progress_step(run_dir: Path, stage: str) -> int:
    progress = run_dir / "state" / stage / "progress.json"
    return json.loads(progress.read_text())["step"] if progress.is_file() else 0


def test_training_killed_midway_resumes_from_its_last_save(recorded_file, tmp_path):
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "train.py",
        "--config",
        TINY,
        "--data",
        str(recorded_file),
        "--out",
        str(run_dir),
        "--stage",
        "vae",
        "train.vae.steps=100000",
        "train.vae.save_every=3",
        "train.vae.eval_every=100000",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command, cwd=REPOSITORY, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while progress_step(run_dir, "vae") < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    saved = progress_step(run_dir, "vae")
    assert saved >= 6, "the trainer never saved a resumable state"

    finish = [
        "--config",
        TINY,
        "--data",
        str(recorded_file),
        "--out",
        str(run_dir),
        "--stage",
        "vae",
        f"train.vae.steps={saved + 2}",
        "train.vae.save_every=3",
    ]
    result = subprocess.run(
        [sys.executable, "train.py", *finish],
        cwd=REPOSITORY,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"resuming from step {saved}" in result.stdout
    assert progress_step(run_dir, "vae") == saved + 2
    assert load(run_dir / "checkpoint").settings.training["stages"]["vae"]["steps"] == saved + 2


def launch(*arguments: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """``accelerate launch ...`` (the README's command) with this interpreter, on CPUs only."""
    command = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", *arguments]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(command, cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=timeout)


def test_two_processes_launched_as_the_readme_says_split_the_data(recorded_file, tmp_path):
    run_dir = tmp_path / "run"
    arguments = ["--config", TINY, "--data", str(recorded_file), "--out", str(run_dir)]
    # The heads stage stops on its time limit, which all processes must reach at the same step.
    arguments += ["train.heads.steps=100000", "train.heads.max_minutes=0.01"]
    arguments += ["train.heads.save_every=100000", "train.heads.eval_every=100000"]
    # --main_process_port 0: a free port, so that runs side by side do not meet on the default one
    result = launch("--multi_gpu", "--num_processes", "2", "--main_process_port", "0", "train.py", *arguments)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train.py: 2 process(es) (MULTI_CPU)" in result.stdout
    assert "Grad strides do not match" not in result.stderr
    model = load(run_dir / "checkpoint")
    assert 0 < model.settings.training["stages"]["heads"]["steps"] < 100000
    for stage in ("vae", "dit", "heads"):
        assert model.settings.training["stages"][stage]["processes"] == 2
        record = json.loads((run_dir / f"{stage}_first_windows.json").read_text())
        first, second = record["windows"]
        assert record["processes"] == 2 and len(first) == len(second) == 8
        assert sorted(map(tuple, first)) != sorted(map(tuple, second)), (
            f"{stage}: both processes drew the same"
        )
    # Saved once, resumable by both: each process keeps its own random state.
    assert sorted(path.name for path in (run_dir / "state" / "dit").glob("random_states_*")) == [
        "random_states_0.pkl",
        "random_states_1.pkl",
    ]
    frame = model.decode(model.predict_next(torch.zeros(1, 2, 4, 16, 16), torch.zeros(1, 6).long()))
    assert frame.shape == (1, 64, 64, 3)


def test_a_launch_that_starts_fewer_processes_than_asked_is_refused(monkeypatch):
    from types import SimpleNamespace

    from worldmodel.training import launch_problem

    one = SimpleNamespace(num_processes=1, distributed_type="NO")
    for name in ("WORLD_SIZE", "ACCELERATE_USE_CPU", "MASTER_ADDR"):
        monkeypatch.delenv(name, raising=False)
    assert launch_problem(one) is None  # python train.py
    # `accelerate launch --cpu --num_processes 2`: its plain launcher starts one process (tried by hand).
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    assert "accelerate launch --multi_gpu --num_processes N" in launch_problem(one)
    # torchrun started two, but accelerate set up a single-process run.
    monkeypatch.delenv("ACCELERATE_USE_CPU")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert "2 processes were started but accelerate set up 1" in launch_problem(one)
    assert launch_problem(SimpleNamespace(num_processes=2, distributed_type="MULTI_CPU")) is None


def test_gradients_keep_their_parameters_layout_for_ddp():
    from diffusers.models.transformers.sana_transformer import GLUMBConv

    from worldmodel.training import keep_gradient_layout

    # Sana's Mix-FFN gives its depthwise convolution a channels-last view, as its block does.
    block = GLUMBConv(8, 8, residual_connection=False)
    tokens = torch.randn(2, 4, 4, 8).permute(0, 3, 1, 2)  # (B, C, h, w), channels-last strides
    block(tokens).sum().backward()
    weight = block.conv_depth.weight
    assert weight.grad.stride() != weight.stride()  # what DDP warned about
    expected = weight.grad.clone()
    block.zero_grad()
    keep_gradient_layout(block)
    block(tokens).sum().backward()
    assert weight.grad.stride() == weight.stride()
    assert torch.equal(weight.grad, expected)


def test_a_run_directory_of_another_config_is_refused(recorded_file, tmp_path, capsys):
    run_dir = tmp_path / "run"
    base = ["--config", TINY, "--data", str(recorded_file), "--out", str(run_dir), "--stage", "heads"]
    assert train.main([*base, "train.heads.steps=1"]) == 0
    assert train.main([*base, "dit.num_layers=2"]) == 2
    assert "another model config (different: dit)" in capsys.readouterr().err


def test_data_of_another_game_or_not_a_recording_is_refused(recorded_file, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert (
        train.main(["--config", TINY, "--data", str(recorded_file), "--out", out, "env_id=ALE/MsPacman-v5"])
        == 2
    )
    assert "recorded from Pacman-v0 but the config is for ALE/MsPacman-v5" in capsys.readouterr().err
    not_hdf5 = tmp_path / "notes.h5"
    not_hdf5.write_text("not a recording")
    assert train.main(["--config", TINY, "--data", str(not_hdf5), "--out", out]) == 2
    assert str(not_hdf5) in capsys.readouterr().err


def test_a_cooldown_lowers_the_learning_rate_to_zero_at_the_last_step_even_after_a_resume():
    from types import SimpleNamespace

    from worldmodel.training import learning_rate_schedule

    stage = SimpleNamespace(learning_rate=1.0, warmup_steps=10, steps=100, decay_steps=40)

    def stepped(optimizer, schedule, count):
        rates = []
        for _ in range(count):
            rates.append(schedule.get_last_lr()[0])
            optimizer.step()
            schedule.step()
        return rates

    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=stage.learning_rate)
    schedule = learning_rate_schedule(optimizer, stage)
    first = stepped(optimizer, schedule, 70)
    assert first[0] == pytest.approx(0.1) and first[9] == pytest.approx(1.0)
    assert first[59] == pytest.approx(1.0) and first[69] == pytest.approx(0.775)

    # A resumed run restores the schedule's step and goes on down the same line.
    resumed_optimizer = torch.optim.SGD([weight], lr=stage.learning_rate)
    resumed = learning_rate_schedule(resumed_optimizer, stage)
    resumed.load_state_dict(schedule.state_dict())
    resumed_optimizer.load_state_dict(optimizer.state_dict())
    rest = stepped(resumed_optimizer, resumed, 30)
    assert rest[0] == pytest.approx(0.75) and rest[-1] == pytest.approx(1 / 40)
    assert all(a > b for a, b in zip(rest, rest[1:], strict=False))
    assert resumed.get_last_lr()[0] == pytest.approx(0.0)

    constant = learning_rate_schedule(
        torch.optim.SGD([weight], lr=1.0), SimpleNamespace(**{**vars(stage), "decay_steps": 0})
    )
    assert stepped(constant.optimizer, constant, 100)[-1] == pytest.approx(1.0)


# ---- resuming bit for bit, and files that would run code ------------------------------------------------
ROLLOUTS = ("flow.rollout_fraction=0.5", "flow.rollout_steps=2")  # half of each batch plays 2 frames itself
BRANCHES = ("flow.branch_fraction=0.5",)  # half of each batch: a random key and the game's answer to it


def trained_dit(recorded_file, out: Path, *steps: int, settings=()) -> dict:
    """The denoiser after ``train.py --stage dit`` ran to each of ``steps`` in turn, resuming in between."""
    base = ["--config", TINY, "--data", str(recorded_file), "--out", str(out), "--stage", "dit", *settings]
    for count in steps:
        assert train.main([*base, f"train.dit.steps={count}", "train.dit.eval_every=100"]) == 0
    return load(out / "checkpoint").denoiser.state_dict()


@pytest.mark.parametrize(
    "settings", [(), ROLLOUTS, BRANCHES], ids=["recorded history", "own rollouts", "branch targets"]
)
def test_a_resumed_run_trains_the_same_weights_as_an_uninterrupted_one(recorded_file, tmp_path, settings):
    straight = trained_dit(recorded_file, tmp_path / "straight", 4, settings=settings)
    resumed = trained_dit(recorded_file, tmp_path / "resumed", 2, 4, settings=settings)  # resumes at step 2
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)
    assert (tmp_path / "resumed" / "state" / "dit" / "ema.safetensors").is_file()


def test_training_on_its_own_rollouts_learns_from_other_histories(recorded_file, tmp_path, capsys):
    rolled = trained_dit(recorded_file, tmp_path / "rolled", 4, settings=ROLLOUTS)
    plain = trained_dit(recorded_file, tmp_path / "plain", 4)  # the same data and seeds, recorded history
    assert any(not torch.equal(rolled[name], plain[name]) for name in rolled)
    base = ["--config", TINY, "--data", str(recorded_file), "--out", str(tmp_path / "bad"), "--stage", "dit"]
    assert train.main([*base, "flow.rollout_steps=3"]) != 0  # more than the tiny config's 2 history frames
    assert "flow.rollout_steps in 1..2" in capsys.readouterr().err


def test_a_state_saved_by_the_earlier_train_py_still_resumes(recorded_file, trained_run, tmp_path):
    # Before the EMA had its own file, accelerate pickled it as custom_checkpoint_0.pkl.
    runs = {}
    for name in ("current", "earlier"):
        runs[name] = tmp_path / name
        shutil.copytree(trained_run, runs[name])
    state = runs["earlier"] / "state" / "heads"
    ema = read_ema_state(state / EMA_FILE, state)
    torch.save(ema, state / "custom_checkpoint_0.pkl")
    (state / EMA_FILE).unlink()
    for run_dir in runs.values():
        base = ["--config", TINY, "--data", str(recorded_file), "--out", str(run_dir), "--stage", "heads"]
        assert train.main([*base, "train.heads.steps=6"]) == 0
    assert not (state / "custom_checkpoint_0.pkl").exists() and (state / EMA_FILE).is_file()
    current, earlier = (load(runs[name] / "checkpoint").heads.state_dict() for name in ("current", "earlier"))
    assert all(torch.equal(current[name], earlier[name]) for name in current)


class RunsCode:
    """Unpickled, it creates ``marker``: a stand-in for a file planted to run code in the trainer."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_crafted_latent_cache_is_refused_unrun_and_rebuilt(recorded_file, tmp_path, writer):
    marker, cache_path = tmp_path / "ran", tmp_path / "latents.safetensors"
    pickle.loads(pickle.dumps(RunsCode(marker)))
    assert marker.exists()  # the payload does run when unpickled
    marker.unlink()
    if writer == "pickle":
        cache_path.write_bytes(pickle.dumps({"key": RunsCode(marker)}))
    else:
        torch.save({"key": RunsCode(marker)}, cache_path)  # the old cache's format
    vae = WorldModel.from_config(load_config(TINY), list(envs.ACTION_MEANINGS)).vae.eval()
    with pytest.warns(UserWarning, match="not a latent cache.*nothing in it ran"):
        built = build_latent_cache(vae, recorded_file, cache_path, show_progress=False)
    assert not marker.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reused = build_latent_cache(vae, recorded_file, cache_path, show_progress=False)
    for name, value in built.__dict__.items():
        assert np.array_equal(np.asarray(value), np.asarray(getattr(reused, name))), name


def test_the_latent_cache_is_kept_for_a_new_decoder_and_rebuilt_for_a_new_encoder(recorded_file, tmp_path):
    cache_path = tmp_path / "latents.safetensors"
    vae = WorldModel.from_config(load_config(TINY), list(envs.ACTION_MEANINGS)).vae.eval()
    first = build_latent_cache(vae, recorded_file, cache_path, show_progress=False)
    written = cache_path.stat().st_mtime_ns

    with torch.no_grad():  # a student's slimmer decoder: the latents do not change
        next(vae.decoder.parameters()).add_(1.0)
    build_latent_cache(vae, recorded_file, cache_path, show_progress=False)
    assert cache_path.stat().st_mtime_ns == written

    vae.register_to_config(scaling_factor=2 * vae.config.scaling_factor)
    doubled = build_latent_cache(vae, recorded_file, cache_path, show_progress=False)
    assert torch.allclose(doubled.latents, 2 * first.latents, atol=1e-5)

    with torch.no_grad():
        next(vae.encoder.parameters()).add_(1.0)
    changed = build_latent_cache(vae, recorded_file, cache_path, show_progress=False)
    assert not torch.allclose(changed.latents, doubled.latents)


@pytest.mark.parametrize(
    "planted", ["optimizer.bin", "random_states_0.pkl", "custom_checkpoint_0.pkl", "ema.safetensors"]
)
def test_a_crafted_training_state_file_is_refused_unrun(
    recorded_file, trained_run, tmp_path, capsys, planted
):
    run_dir, marker = tmp_path / "run", tmp_path / "ran"
    shutil.copytree(trained_run, run_dir)
    torch.save({"state": RunsCode(marker)}, run_dir / "state" / "heads" / planted)
    base = ["--config", TINY, "--data", str(recorded_file), "--out", str(run_dir), "--stage", "heads"]
    assert train.main([*base, "train.heads.steps=6"]) == 2
    error = capsys.readouterr().err
    assert planted in error and "nothing in it ran" in error and "Delete" in error
    assert not marker.exists()


def test_a_second_trainer_on_a_running_run_is_refused(recorded_file, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    # Another process holds the run (a train.py still training it), reached through a symlink here.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from worldmodel.training import lock_run; "
         f"lock_run(Path({str(run_dir)!r})); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, cwd=REPOSITORY,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        (tmp_path / "alias").symlink_to(run_dir)
        arguments = ["--config", TINY, "--data", str(recorded_file), "--out", str(tmp_path / "alias")]
        assert train.main(arguments) == 2
        assert "being trained by another train.py" in capsys.readouterr().err
        assert not (run_dir / "checkpoint").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_wrongly_typed_override_is_refused_before_any_training(recorded_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        train.main(["--config", TINY, "--data", str(recorded_file), "--out", str(out), "train.dit.steps=abc"])
        == 2
    )
    assert "'train.dit.steps' must be an integer, got 'abc'" in capsys.readouterr().err
    assert not (out / "state").exists()


def test_ctrl_c_stops_training_and_keeps_the_last_save(recorded_file, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "train.py", "--config", TINY, "--data", str(recorded_file), "--out", str(out),
               "--stage", "vae", "train.vae.steps=100000", "train.vae.save_every=1"]  # fmt: skip
    # Ctrl-C as a terminal sends it, even where this test runs in the background (a shell starts
    # background jobs with SIGINT ignored, and Python then never raises KeyboardInterrupt)
    default_ctrl_c = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    process = subprocess.Popen(
        command, cwd=REPOSITORY, stderr=subprocess.PIPE, text=True, preexec_fn=default_ctrl_c
    )
    deadline = time.monotonic() + 120
    while not (out / "state" / "vae" / "progress.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, error = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted" in error and "Traceback" not in error
    step = json.loads((out / "state" / "vae" / "progress.json").read_text())["step"]
    assert step >= 1


@pytest.mark.parametrize(
    "settings",
    [(), ROLLOUTS, ("flow.random_key_fraction=0.5",)],
    ids=["recorded history", "the student's own rollouts", "random keys"],
)
def test_the_distill_stage_teaches_one_pass_to_land_where_the_teachers_sampler_does(
    recorded_file, trained_run, tmp_path, settings
):
    # A teacher whose sampler moves far from its noise: the tiny run's, its output layer given weights.
    teacher = load(trained_run / "checkpoint")
    torch.manual_seed(0)
    torch.nn.init.normal_(teacher.denoiser.transformer.proj_out.weight, std=0.3)
    teacher_dir = tmp_path / "teacher" / "checkpoint"
    teacher.save(teacher_dir)
    os.link(trained_run / "latents.safetensors", teacher_dir.parent / "latents.safetensors")
    run_dir = tmp_path / "one-step"
    arguments = ["--config", TINY, "--data", str(recorded_file), "--out", str(run_dir), "--stage", "distill"]
    steps = ["train.distill.steps=40", "train.distill.learning_rate=3e-3", "train.distill.eval_every=40"]
    assert train.main([*arguments, "--init-from", str(teacher_dir), *steps, *settings]) == 0
    student = load(run_dir / "checkpoint")
    assert (student.settings.sampler.sampling_steps, student.settings.sampler.guidance_scale) == (1, 1.0)
    assert student.settings.training["stages"]["distill"]["teacher"] == str(teacher_dir)
    # The teacher's latents were shared, not encoded again.
    assert os.path.samefile(run_dir / "latents.safetensors", teacher_dir.parent / "latents.safetensors")

    # On held-out windows, from the same noise: the student's one pass is nearer the teacher's
    # sampler than the teacher's own denoiser run for one pass.
    cache = build_latent_cache(teacher.vae, recorded_file, trained_run / "latents.safetensors")
    rows = cache.window_starts(np.arange(len(cache.length)), teacher.settings.history_length)
    history, _, actions = cache.history_batch(
        rows, teacher.settings.history_length, teacher.settings.action_window
    )
    level = torch.full((len(rows),), teacher.settings.sampler.context_noise)
    noise = torch.randn(history[:, -1].shape, generator=torch.Generator().manual_seed(0))
    one_pass = student.sampler  # the student's default: one Euler step, no guidance pass
    with torch.no_grad():
        target = teacher.sampler.integrate(teacher.denoiser, noise, history, actions, level)
        gaps = [
            (one_pass.integrate(model.denoiser, noise, history, actions, level) - target).pow(2).mean()
            for model in (student, teacher)
        ]
    assert gaps[0] < 0.7 * gaps[1]


def test_random_keys_replace_only_the_key_being_pressed_and_follow_the_seed():
    actions = torch.zeros(1000, 8, dtype=torch.long)  # every window pressed key 0 throughout
    relabelled = with_random_keys(actions, 0.5, 5, seed=[7, 2])
    assert torch.equal(relabelled[:, :-1], actions[:, :-1])  # the keys pressed before stay
    assert torch.equal(relabelled[500:], actions[500:])  # half of the batch keeps its recorded key
    assert set(relabelled[:500, -1].tolist()) == {0, 1, 2, 3, 4}
    assert torch.equal(
        relabelled, with_random_keys(actions, 0.5, 5, seed=[7, 2])
    )  # a resume draws them again
    assert not torch.equal(relabelled, with_random_keys(actions, 0.5, 5, seed=[8, 2]))
    assert torch.equal(actions, torch.zeros_like(actions))  # the batch given is not changed
    with pytest.raises(ConfigError, match="flow.random_key_fraction must be in"):
        with_random_keys(actions, 1.5, 5, seed=0)


def test_the_distill_stage_without_a_teacher_says_how_to_give_one(recorded_file, tmp_path, capsys):
    arguments = [
        "--config",
        TINY,
        "--data",
        str(recorded_file),
        "--out",
        str(tmp_path / "r"),
        "--stage",
        "distill",
    ]
    assert train.main(arguments) == 2
    assert "--init-from" in capsys.readouterr().err


def test_a_slimmer_decoder_is_distilled_with_the_teachers_encoder(recorded_file, trained_run, tmp_path):
    teacher_dir = trained_run / "checkpoint"
    run_dir = tmp_path / "slim"
    arguments = ["--config", TINY, "--data", str(recorded_file), "--out", str(run_dir), "--stage", "distill"]
    settings = ["vae.decoder_block_out_channels=[4,4,4]", "train.distill_decoder.steps=30",
                "train.distill_decoder.learning_rate=3e-3", "train.distill_decoder.eval_every=10"]  # fmt: skip
    assert train.main([*arguments, "--init-from", str(teacher_dir), *settings]) == 0
    teacher, student = load(teacher_dir), load(run_dir / "checkpoint")
    assert tuple(student.vae.config.decoder_block_out_channels) == (4, 4, 4)
    for kept, taught in zip(student.vae.encoder.parameters(), teacher.vae.encoder.parameters(), strict=True):
        assert torch.equal(kept, taught)  # the latent space is the teacher's
    assert student.vae.config.scaling_factor == teacher.vae.config.scaling_factor
    log = run_dir / "distill_decoder_eval.csv"
    scores = [float(row["psnr_to_teacher"]) for row in csv.DictReader(log.open())]
    assert len(scores) == 3 and scores[-1] > scores[0]
    assert set(student.settings.training["stages"]) >= {"distill", "distill_decoder"}
    env = gymnasium.make("WorldModel-v0", checkpoint=run_dir / "checkpoint")
    env.reset(seed=0)
    assert env.step(1)[0].shape == (64, 64, 3)
