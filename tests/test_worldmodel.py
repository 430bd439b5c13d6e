"""The world model's parts on a tiny config: shapes, the null-action path, sampler determinism,
a real learning check, checkpoint round trips and the errors a user meets."""

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

import envs
import worldmodel.model
from worldmodel.checkpoint import CheckpointError, load
from worldmodel.checkpoint_files import write_checksums
from worldmodel.config import ConfigError, SamplerConfig, config_from_dict, load_config
from worldmodel.denoiser import Denoiser, held_keys, with_more_inputs
from worldmodel.flow import changed_cell_weights, flow_matching_loss, own_rollout_history
from worldmodel.heads import RewardEndHeads, best_end_threshold, end_weight, heads_loss, reward_values_of
from worldmodel.model import WorldModel
from worldmodel.sampler import SAMPLERS, Sampler, make_sampler
from worldmodel.vae import reconstruction_loss

ACTIONS = list(envs.ACTION_MEANINGS)


def make_tiny_model(*overrides: str) -> WorldModel:
    torch.manual_seed(0)
    model = WorldModel.from_config(load_config("configs/tiny.yaml", overrides), ACTIONS).eval()
    # The output layer starts at zero by design; give it weights so outputs depend on the inputs.
    torch.nn.init.normal_(model.denoiser.transformer.proj_out.weight, std=0.1)
    return model


@pytest.fixture
def tiny_model() -> WorldModel:
    return make_tiny_model()


def make_inputs(model: WorldModel, batch: int = 3, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    s = model.settings
    history = torch.randn(
        batch, s.history_length, s.latent_channels, s.latent_size, s.latent_size, generator=generator
    )
    actions = torch.randint(0, s.num_actions, (batch, s.action_window), generator=generator)
    return history, actions


def test_vae_round_trip_shapes(tiny_model):
    frames = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    latents = tiny_model.encode(frames)
    assert latents.shape == (2, 4, 16, 16)
    decoded = tiny_model.decode(latents)
    assert decoded.shape == frames.shape and decoded.dtype == torch.uint8


def test_many_latents_are_decoded_a_chunk_at_a_time_into_the_same_frames(tiny_model, monkeypatch):
    latents = torch.randn(5, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = tiny_model.decode(latents)
        passes, draw = [], tiny_model.draw

        def counted(part):
            passes.append(len(part))
            return draw(part)

        monkeypatch.setattr(tiny_model, "draw", counted)
        monkeypatch.setattr(worldmodel.model, "DECODE_CHUNK", 2)
        chunked = tiny_model.decode(latents)
    assert passes == [2, 2, 1]
    assert (chunked.int() - whole.int()).abs().max() <= 1  # a batch's arithmetic may round a pixel apart


def test_denoiser_and_heads_shapes(tiny_model):
    history, actions = make_inputs(tiny_model)
    noisy = torch.randn_like(history[:, 0])
    velocity = tiny_model.denoiser(
        noisy, torch.rand(3), history, actions, torch.zeros(3), torch.zeros(3, dtype=torch.bool)
    )
    assert velocity.shape == noisy.shape
    reward, end_probability = tiny_model.predict_reward_end(history[:, -1], noisy, actions[:, -1])
    assert reward.shape == (3,) and end_probability.shape == (3,)
    assert ((end_probability >= 0) & (end_probability <= 1)).all()


@pytest.mark.parametrize("action_planes", [False, True])
def test_null_action_ignores_actions(action_planes):
    tiny_model = make_tiny_model(f"dit.action_planes={str(action_planes).lower()}")
    assert tiny_model.denoiser.action_planes == action_planes
    history, actions = make_inputs(tiny_model)
    noisy, t, level = torch.randn_like(history[:, 0]), torch.full((3,), 0.5), torch.zeros(3)
    other_actions = (actions + 1) % len(ACTIONS)
    with torch.no_grad():
        drop = torch.ones(3, dtype=torch.bool)
        null_a = tiny_model.denoiser(noisy, t, history, actions, level, drop)
        null_b = tiny_model.denoiser(noisy, t, history, other_actions, level, drop)
        keep = torch.zeros(3, dtype=torch.bool)
        cond_a = tiny_model.denoiser(noisy, t, history, actions, level, keep)
        cond_b = tiny_model.denoiser(noisy, t, history, other_actions, level, keep)
    assert torch.allclose(null_a, null_b)
    assert not torch.allclose(cond_a, cond_b)


def test_action_planes_steer_every_cell_from_the_first_layer():
    model = make_tiny_model("dit.action_planes=true")
    history, actions = make_inputs(model)
    noisy, t, level, keep = (
        torch.randn_like(history[:, 0]),
        torch.full((3,), 0.5),
        torch.zeros(3),
        torch.zeros(3, dtype=torch.bool),
    )
    torch.nn.init.zeros_(
        model.denoiser.transformer.caption_projection.linear_2.weight
    )  # cross-attention sees nothing
    torch.nn.init.zeros_(model.denoiser.transformer.caption_projection.linear_2.bias)
    turned = actions.clone()
    turned[:, -1] = (actions[:, -1] + 1) % len(ACTIONS)  # only the action being taken changes
    with torch.no_grad():
        velocity = model.denoiser(noisy, t, history, actions, level, keep)
        steered = model.denoiser(noisy, t, history, turned, level, keep)
    assert not torch.allclose(velocity, steered)


def test_widening_a_trained_denoiser_for_action_planes_keeps_its_predictions(tiny_model):
    history, actions = make_inputs(tiny_model)

    def generators():
        return [torch.Generator().manual_seed(item) for item in range(3)]

    before = tiny_model.predict_next(history, actions, generator=generators())
    conditioner = tiny_model.denoiser.conditioner
    tiny_model.denoiser = Denoiser(
        with_more_inputs(tiny_model.denoiser.transformer, len(ACTIONS)), conditioner
    )
    assert tiny_model.denoiser.action_planes
    assert torch.equal(tiny_model.predict_next(history, actions, generator=generators()), before)


@pytest.mark.parametrize("wrap_edges", [False, True])
def test_a_wrapping_denoiser_carries_what_leaves_one_edge_in_at_the_other(wrap_edges, tmp_path):
    model = make_tiny_model(f"dit.wrap_edges={str(wrap_edges).lower()}")
    history, actions = make_inputs(model)
    noisy, t = torch.randn_like(history[:, 0]), torch.rand(3)
    level, keep = torch.zeros(3), torch.zeros(3, dtype=torch.bool)
    shift = model.denoiser.transformer.config.patch_size  # a whole token to the right, past the edge

    def velocity(model, noisy, history):
        with torch.no_grad():
            return model.denoiser(noisy, t, history, actions, level, keep)

    moved = velocity(model, noisy.roll(shift, -1), history.roll(shift, -1))
    equivariant = torch.allclose(moved, velocity(model, noisy, history).roll(shift, -1), atol=1e-5)
    assert equivariant == wrap_edges
    model.save(tmp_path / "checkpoint")  # the padding is no weight: the config must bring it back
    reloaded = load(tmp_path / "checkpoint")
    assert reloaded.denoiser.wrap_edges == wrap_edges
    assert torch.allclose(velocity(reloaded, noisy, history), velocity(model, noisy, history), atol=1e-6)


@pytest.mark.parametrize("scheduler", ["euler", "dpm"])
@pytest.mark.parametrize("guidance_scale", [1.0, 2.0])
def test_sampler_is_deterministic_under_a_seed(tiny_model, scheduler, guidance_scale):
    history, actions = make_inputs(tiny_model)
    sampler = tiny_model.sampler.replace(scheduler=scheduler, sampling_steps=3, guidance_scale=guidance_scale)

    def sample(seed):
        return tiny_model.predict_next(history, actions, sampler, torch.Generator().manual_seed(seed))

    first, again, other = sample(7), sample(7), sample(8)
    assert first.shape == history[:, 0].shape
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_guidance_combines_conditional_and_null_passes_in_one_batch():
    calls = []

    def denoiser(noisy, timesteps, history, actions, context_noise, drop_actions):
        calls.append((drop_actions.clone(), len(history), len(actions), len(context_noise)))
        # conditional pass says 1, null pass says 0: guided velocity must be w * 1
        return (~drop_actions).float().view(-1, 1, 1, 1).expand_as(noisy)

    sampler = make_sampler(SamplerConfig(sampling_steps=1, guidance_scale=3.0, context_noise=0.0))
    history, actions = torch.zeros(2, 3, 1, 2, 2), torch.zeros(2, 4, dtype=torch.long)
    result = sampler.sample(denoiser, history, actions, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)
    torch.randn(history.shape, generator=generator)  # the history's context noise is drawn first
    start = torch.randn((2, 1, 2, 2), generator=generator)
    assert len(calls) == 1
    drop, *sizes = calls[0]
    assert drop.tolist() == [False, False, True, True] and sizes == [4, 4, 4]
    assert torch.allclose(result, start - 3.0)  # one Euler step from t=1 to t=0 with velocity 3


@pytest.mark.parametrize(("steps", "shift"), [(1, 1.0), (2, 1.0), (3, 3.0)])
def test_euler_steps_land_where_diffusers_flow_match_scheduler_does(steps, shift):
    # The sampler steps between fixed noise levels itself (no scheduler on the hot path); it must visit
    # the same levels and reach the same latent as diffusers' FlowMatchEulerDiscreteScheduler.
    settings = SamplerConfig(sampling_steps=steps, guidance_scale=1.0, timestep_shift=shift)
    seen = []

    def denoiser(noisy, timesteps, history, actions, context_noise, drop_actions):
        seen.append(float(timesteps[0]))
        return torch.sin(3 * noisy) + timesteps.view(-1, 1, 1, 1)  # depends on the latent and the level

    noise, history = torch.randn(2, 1, 3, 3), torch.zeros(2, 3, 1, 3, 3)
    actions, level, keep = (
        torch.zeros(2, 4, dtype=torch.long),
        torch.zeros(2),
        torch.zeros(2, dtype=torch.bool),
    )
    ours = make_sampler(settings).integrate(denoiser, noise, history, actions, level)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 1.0 / steps, steps))
    latents, levels = noise, []
    for timestep in scheduler.timesteps:
        levels.append(float(timestep) / 1000)
        velocity = denoiser(latents, (timestep / 1000).expand(2), history, actions, level, keep)
        latents = scheduler.step(velocity, timestep, latents, return_dict=False)[0]
    assert seen[:steps] == pytest.approx(levels)
    assert torch.allclose(ours, latents, atol=1e-5)


@pytest.mark.parametrize("scheduler", ["euler", "dpm"])
def test_one_sampler_serves_games_stepping_in_several_threads(scheduler):
    # Game A is held inside its first denoiser pass while game B samples from start to end with the
    # very same (cached) sampler; A must then finish as if it had been alone.
    sampler = make_sampler(
        SamplerConfig(sampling_steps=3, guidance_scale=1.0, context_noise=0.0, scheduler=scheduler)
    )
    history, actions = torch.zeros(1, 3, 1, 2, 2), torch.zeros(1, 4, dtype=torch.long)
    inside_a, let_a_go = threading.Event(), threading.Event()

    def denoiser(noisy, timesteps, history, actions, context_noise, drop_actions):
        if threading.current_thread().name == "game-a" and not inside_a.is_set():
            inside_a.set()
            let_a_go.wait(10)
        return 0.5 * noisy + timesteps.view(-1, 1, 1, 1)  # depends on the noise level of each step

    def sample():
        return sampler.sample(denoiser, history, actions, generator=torch.Generator().manual_seed(0))

    alone, results = sample(), {}
    game_a = threading.Thread(target=lambda: results.update(a=sample()), name="game-a")
    game_a.start()
    assert inside_a.wait(10)
    results["b"] = sample()
    let_a_go.set()
    game_a.join(10)
    assert set(results) == {"a", "b"}
    assert torch.equal(results["a"], alone) and torch.equal(results["b"], alone)


def test_sampler_rejects_bad_settings():
    with pytest.raises(ValueError, match="sampling steps"):
        make_sampler(SamplerConfig(sampling_steps=0))
    with pytest.raises(ValueError, match="unknown scheduler"):
        make_sampler(SamplerConfig(scheduler="ddim"))
    with pytest.raises(ValueError, match="unknown sampler kind 'consistency'"):
        make_sampler(SamplerConfig(kind="consistency"))


def test_a_new_sampler_is_one_class_and_one_registry_line(tiny_model, monkeypatch):
    class NoisePassThrough(Sampler):
        """Returns the first history latent: enough to see the env use it."""

        def __init__(self, settings):
            self.settings = settings

        def sample(self, denoiser, history_latents, actions, generator=None):
            return history_latents[:, 0].clone()

    monkeypatch.setitem(SAMPLERS, "pass_through", NoisePassThrough)
    history, actions = make_inputs(tiny_model)
    sampler = tiny_model.sampler.replace(kind="pass_through")
    assert isinstance(sampler, NoisePassThrough)
    assert torch.equal(tiny_model.predict_next(history, actions, sampler), history[:, 0])
    assert sampler.replace(kind="flow").settings.sampling_steps == tiny_model.settings.sampler.sampling_steps


def test_a_checkpoint_stores_each_setting_once_and_reads_them_back(tmp_path):
    model = make_tiny_model()
    model.settings.config.sampler = model.settings.sampler.replace(guidance_scale=2.5)
    model.save(tmp_path / "checkpoint")
    record = json.loads((tmp_path / "checkpoint" / "world_model.json").read_text())
    assert set(record) == {"format", "format_version", "action_meanings", "config", "training"}
    assert record["config"]["sampler"]["guidance_scale"] == 2.5
    settings = load(tmp_path / "checkpoint").settings
    assert settings.config == model.settings.config and settings.sampler.guidance_scale == 2.5
    assert (settings.history_length, settings.action_window, settings.latent_size) == (2, 6, 16)


def test_a_version_1_checkpoint_still_loads_with_the_sampler_of_its_own_record(tmp_path):
    # Version 1 kept the sampler beside the config (and the config's sampling under `flow`).
    model = make_tiny_model()
    model.save(tmp_path / "checkpoint")
    settings_file = tmp_path / "checkpoint" / "world_model.json"
    record = json.loads(settings_file.read_text())
    del record["config"]["sampler"]
    record["config"]["flow"]["sampling_steps"] = 7
    record.update(format_version=1, env_id=record["config"]["env_id"], history_length=2)
    record["sampler"] = {"sampling_steps": 3, "guidance_scale": 2.5, "context_noise": 0.1, "scheduler": "dpm"}
    settings_file.write_text(json.dumps(record))
    write_checksums(tmp_path / "checkpoint")
    sampler = load(tmp_path / "checkpoint").settings.sampler
    assert (sampler.sampling_steps, sampler.guidance_scale, sampler.scheduler) == (3, 2.5, "dpm")


def test_sampler_settings_written_under_flow_by_older_configs_still_load(tmp_path):
    older = tmp_path / "config.yaml"
    older.write_text("flow:\n  timestep_shift: 2.0\n  sampling_steps: 3\n  guidance_scale: 2.5\n")
    config = load_config(older)
    assert config.sampler == SamplerConfig(sampling_steps=3, guidance_scale=2.5, timestep_shift=2.0)
    assert config.flow.timestep_shift == 2.0
    assert config_from_dict(config.to_dict()) == config


def test_loss_weighs_the_cells_that_change_between_frames():
    config = load_config(
        "configs/tiny.yaml", ["flow.changed_cell_weight=8", "flow.changed_cell_threshold=0.5"]
    )
    last = torch.zeros(2, 4, 16, 16)
    target = last.clone()
    target[0, 3, 5, 6] = 2.0  # a sprite arrives in one cell of the first frame, in one channel
    target[1, :, 0, 0] = 0.2  # a change below the threshold: latent jitter, not game motion
    weights = changed_cell_weights(target, last, config.flow)
    assert weights[0, 5, 6] == 8.0
    assert weights.sum() == 2 * 16 * 16 - 1 + 8  # every other cell, the jitter included, keeps weight 1


def test_the_weight_reaches_where_a_sprite_moved_from_and_could_go():
    config = load_config("configs/tiny.yaml", ["flow.changed_cell_weight=8", "flow.changed_cell_reach=1"])
    earlier = torch.zeros(1, 4, 16, 16)
    last = earlier.clone()
    last[0, 0, 5, 6] = 2.0  # Pacman arrived at (5, 6) in the last step, then stopped: no change next
    weights = changed_cell_weights(last.clone(), last, config.flow, earlier)
    assert (weights[0, 4:7, 5:8] == 8.0).all()  # his cell and every cell he could have moved to
    assert weights.sum() == 16 * 16 - 9 + 9 * 8
    assert changed_cell_weights(last.clone(), last, config.flow).sum() == 16 * 16  # no earlier frame given
    edge = earlier.clone()
    edge[0, 0, 0, 15] = 2.0  # the maze wraps: the reach crosses the edge
    weights = changed_cell_weights(edge, earlier, config.flow)
    assert weights[0, 15, 0] == 8.0 and weights[0, 1, 14] == 8.0 and weights[0, 2, 15] == 1.0


def test_rollout_history_holds_the_models_own_frames_each_made_from_the_ones_before():
    class LastPlusAction(Sampler):  # a "model" whose next frame is its last history frame + the key
        def sample(self, denoiser, history_latents, actions, generator=None):
            return history_latents[:, -1] + actions[:, -1, None, None, None]

    recorded = torch.arange(6.0).view(1, 6, 1, 1, 1).expand(1, 6, 1, 2, 2)  # frames 0 .. 5
    keys = torch.tensor([[0, 2], [0, 3], [0, 4]])  # the key of each step: 2 makes frame 3, 3 frame 4 ...
    # The last 3 history frames (3, 4, 5) played by the model from the real frames 0 .. 2.
    earlier = [(recorded[:, j : j + 3], keys[j : j + 1]) for j in range(3)]
    history = own_rollout_history(LastPlusAction(), None, earlier, recorded[:, 2:6])
    # frame 2 stays recorded; then 2 + 2 = 4, 4 + 3 = 7 (read from the made frame), 7 + 4 = 11
    assert history[0, :, 0, 0, 0].tolist() == [2.0, 4.0, 7.0, 11.0]
    assert recorded[0, :, 0, 0, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # the recording untouched


def test_tiny_denoiser_overfits_a_fixed_batch():
    torch.manual_seed(0)
    overrides = [
        "flow.p_uncond=0.0",
        "flow.max_context_noise=0.0",
        "dit.attention_head_dim=16",
        "dit.num_layers=2",
    ]
    config = load_config("configs/tiny.yaml", overrides)
    model = WorldModel.from_config(config, ACTIONS)
    denoiser: Denoiser = model.denoiser.train()
    history, actions = make_inputs(model, batch=4, seed=1)
    # A next frame that is the last one moved sideways: learnable from the history, as game motion is.
    target = history[:, -1].roll(2, dims=-1)
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=3e-3)

    def average_loss():
        torch.manual_seed(123)
        with torch.no_grad():
            return (
                sum(
                    flow_matching_loss(denoiser, target, history, actions, config.flow).item()
                    for _ in range(8)
                )
                / 8
            )

    start = average_loss()
    for _ in range(150):
        loss = flow_matching_loss(denoiser, target, history, actions, config.flow)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert average_loss() < 0.4 * start


def test_checkpoint_round_trip_gives_identical_outputs(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "ckpt")
    loaded = load(tmp_path / "ckpt")
    history, actions = make_inputs(tiny_model)
    out = [
        m.predict_next(history, actions, generator=torch.Generator().manual_seed(3))
        for m in (tiny_model, loaded)
    ]
    assert torch.equal(out[0], out[1])
    assert loaded.settings.action_meanings == ACTIONS
    assert loaded.settings.history_length == tiny_model.settings.history_length


def test_missing_and_foreign_checkpoints_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load(tmp_path / "nowhere")
    (tmp_path / "foreign").mkdir()
    with pytest.raises(CheckpointError, match="no world_model.json"):
        load(tmp_path / "foreign")


def test_checkpoint_of_another_format_version_is_refused(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "ckpt")
    settings_file = tmp_path / "ckpt" / "world_model.json"
    record = json.loads(settings_file.read_text())
    record["format_version"] = 99
    settings_file.write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="version 99"):
        load(tmp_path / "ckpt")


def test_checkpoint_whose_parts_come_from_other_configs_is_refused(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "ckpt")
    other = WorldModel.from_config(load_config("configs/tiny.yaml", ["history_length=3"]), ACTIONS)
    other.denoiser.transformer.save_pretrained(tmp_path / "ckpt" / "dit")
    with pytest.raises(CheckpointError, match="dit.in_channels"):
        load(tmp_path / "ckpt")


def test_checkpoint_whose_weights_do_not_match_its_config_is_refused(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "ckpt")
    config_file = tmp_path / "ckpt" / "heads" / "config.json"
    part_config = json.loads(config_file.read_text())
    part_config["hidden_channels"] = 12
    config_file.write_text(json.dumps(part_config))
    with pytest.raises(CheckpointError, match="'heads' part"):
        load(tmp_path / "ckpt")


class RunsCode:
    """Unpickled, it creates ``marker``: a stand-in for a weights file planted to run code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickled_weights_file_in_place_of_a_part_is_never_loaded(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "ckpt")
    part = tmp_path / "ckpt" / "heads"
    (part / "diffusion_pytorch_model.safetensors").unlink()
    torch.save({"weights": RunsCode(tmp_path / "ran")}, part / "diffusion_pytorch_model.bin")
    with pytest.raises(CheckpointError, match="'heads' part"):
        load(tmp_path / "ckpt")
    assert not (tmp_path / "ran").exists()


def test_config_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'num_layers'"):
        load_config("configs/tiny.yaml", ["dit.num_layer=3"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config("configs/tiny.yaml", ["dit.num_layers"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    assert load_config("configs/tiny.yaml", ["dit.num_layers=3"]).dit.num_layers == 3


def test_held_key_is_the_last_key_pressed_in_the_window():
    NOOP, UP, RIGHT, LEFT = 0, 1, 2, 3
    windows = torch.tensor([[UP, NOOP, NOOP, NOOP], [UP, LEFT, NOOP, RIGHT], [NOOP, NOOP, NOOP, NOOP]])
    assert held_keys(windows, NOOP).tolist() == [UP, RIGHT, NOOP]


def test_a_key_pressed_before_the_last_k_steps_still_changes_the_next_frame():
    # The game keeps a requested turn after its key is let go: a key older than the K + 1 latest
    # actions must still reach the denoiser, through the action window and the held-key planes.
    model = make_tiny_model("dit.action_planes=true", "dit.held_action_planes=true")
    s = model.settings
    assert s.action_window > s.history_length + 1
    history, _ = make_inputs(model, batch=1)
    released = torch.zeros(1, s.action_window, dtype=torch.long)
    tapped = released.clone()
    tapped[0, 0] = 1  # UP, pressed before the K + 1 latest steps, then no key since
    outputs = [
        model.predict_next(
            history, window, model.sampler.replace(guidance_scale=1.0), torch.Generator().manual_seed(0)
        )
        for window in (released, tapped)
    ]
    assert not torch.allclose(*outputs)


def test_reward_classes_give_back_the_games_exact_values():
    rewards = torch.tensor([0.0, 1.0, 0.0, 5.0, 20.0, 21.0, 1.0])
    values = reward_values_of(rewards)
    assert values == [0.0, 1.0, 5.0, 20.0, 21.0]
    heads = RewardEndHeads(latent_channels=4, num_actions=5, hidden_channels=8, reward_values=values)
    classes = heads.reward_classes(rewards)
    logits = torch.nn.functional.one_hot(classes, len(values)).float() * 10
    assert torch.equal(heads.reward(logits), rewards)  # exact, not regressed floats


def test_end_weight_and_threshold_on_an_imbalanced_case():
    terminated = torch.zeros(1000, dtype=torch.bool)
    terminated[:10] = True  # one end in a hundred steps
    assert end_weight(terminated) == pytest.approx((990 / 10) ** 0.5)
    assert end_weight(torch.zeros(5, dtype=torch.bool)) == 1.0  # no end at all: no division by zero
    # A head whose ends score 0.6-0.7 and whose other steps reach up to 0.45: the threshold parts them.
    probability = torch.linspace(0.0, 0.45, 1000)
    probability[:10] = torch.linspace(0.6, 0.7, 10)
    threshold = best_end_threshold(probability, terminated)
    assert 0.44 < threshold < 0.6
    predicted = probability > threshold
    assert torch.equal(predicted, terminated)


def test_the_heads_stage_learns_rewards_and_ends_on_an_imbalanced_recording():
    # Latents that show a reward and an end plainly: the loss must fall for both.
    torch.manual_seed(0)
    heads = RewardEndHeads(latent_channels=4, num_actions=5, hidden_channels=8, reward_values=[0.0, 1.0, 5.0])
    previous = torch.randn(64, 4, 16, 16)
    rewards = torch.tensor([0.0, 1.0, 5.0, 0.0] * 16)
    terminated = torch.zeros(64, dtype=torch.bool)
    terminated[::16] = True
    following = previous + rewards.view(-1, 1, 1, 1) + 3 * terminated.view(-1, 1, 1, 1)
    actions = torch.zeros(64, dtype=torch.long)
    optimizer = torch.optim.Adam(heads.parameters(), lr=3e-3)
    weight = end_weight(terminated)
    losses = []
    for _ in range(150):
        loss = heads_loss(heads, previous, following, actions, rewards, terminated, end_weight=weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    reward_output, end_logit = heads(previous, following, actions)
    assert torch.equal(heads.reward(reward_output), rewards)
    assert torch.equal(torch.sigmoid(end_logit) > 0.5, terminated)


def test_a_save_killed_midway_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    model, path = make_tiny_model(), tmp_path / "checkpoint"
    model.save(path)
    (path / "README.md").write_text("the card")
    before = load(path).denoiser.transformer.proj_out.weight.clone()
    torch.nn.init.normal_(model.denoiser.transformer.proj_out.weight, std=1.0)

    def killed(self, directory, *args, **kwargs):  # the process dies while writing the heads
        raise KeyboardInterrupt

    monkeypatch.setattr(type(model.heads), "save_pretrained", killed)
    with pytest.raises(KeyboardInterrupt):
        model.save(path)
    assert torch.equal(load(path).denoiser.transformer.proj_out.weight, before)
    monkeypatch.undo()
    model.save(path)  # the next save replaces it whole, the card carried over
    assert torch.equal(
        load(path).denoiser.transformer.proj_out.weight, model.denoiser.transformer.proj_out.weight
    )
    assert (path / "README.md").read_text() == "the card"


def test_a_flipped_byte_in_a_weight_file_is_named(tmp_path):
    path = tmp_path / "checkpoint"
    make_tiny_model().save(path)
    weights = path / "dit" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0x01  # inside the tensor data: safetensors itself would load it silently
    weights.write_bytes(bytes(data))
    with pytest.raises(
        CheckpointError, match="diffusion_pytorch_model.safetensors does not match its checksum"
    ):
        load(path)


@pytest.mark.parametrize("shipped", ["checkpoints/pacman-64", "checkpoints/pacman-64-one-step"])
def test_the_shipped_checkpoints_match_their_checksums(shipped):
    model = load(shipped)  # raises on any damaged or missing file
    assert (Path(shipped) / "checksums.json").is_file()
    if shipped.endswith("one-step"):  # the distilled one plays one pass with no guidance pass
        assert (model.settings.sampler.sampling_steps, model.settings.sampler.guidance_scale) == (1, 1.0)


def test_reconstruction_loss_weighs_the_pixels_it_is_told_to():
    target = torch.zeros(2, 3, 8, 8)
    drawn = target.clone()
    drawn[:, :, :2, :2] = 0.5  # a sprite drawn wrong; the rest right
    weight = torch.ones(2, 1, 8, 8)
    assert torch.allclose(reconstruction_loss(drawn, target, weight), reconstruction_loss(drawn, target))
    weight[:, :, :2, :2] = 8.0
    # The sprite's 4 of 64 pixels now carry 32 of 92 parts of the weight: its error counts 8x more.
    expected = (0.25 + 0.5) * 32 / 92
    assert reconstruction_loss(drawn, target, weight).item() == pytest.approx(expected)
