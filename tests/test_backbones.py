"""The denoiser's backbones, chosen by ``dit.backbone``: each builds from the config, predicts a velocity
that follows the actions, gains action planes without changing its predictions, wraps the board's
edges and comes back from a checkpoint; a checkpoint whose parts name different backbones is refused
naming the file, what it holds and what was asked."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from diffusers.models.transformers.sana_transformer import GLUMBConv

import envs
import worldmodel
from worldmodel.backbones import BACKBONES
from worldmodel.backbones.sana import CircularMixFFN
from worldmodel.checkpoint import CheckpointError, load
from worldmodel.checkpoint_files import write_checksums
from worldmodel.config import ConfigError, load_config
from worldmodel.denoiser import Denoiser, with_more_inputs
from worldmodel.model import WorldModel

REPOSITORY = Path(__file__).resolve().parents[1]
ACTIONS = list(envs.ACTION_MEANINGS)
CONFIGS = {"sana": "configs/tiny.yaml", "unet": "configs/tiny-unet.yaml"}


def make_model(backbone: str, *overrides: str) -> WorldModel:
    torch.manual_seed(0)
    model = WorldModel.from_config(load_config(REPOSITORY / CONFIGS[backbone], overrides), ACTIONS).eval()
    # The output layer starts at zero by design; give it weights so outputs depend on the inputs.
    network = model.denoiser.transformer
    torch.nn.init.normal_((network.proj_out if backbone == "sana" else network.conv_out).weight, std=0.1)
    return model


def make_inputs(model: WorldModel, batch: int = 3):
    generator, s = torch.Generator().manual_seed(0), model.settings
    shape = (batch, s.history_length, s.latent_channels, s.latent_size, s.latent_size)
    history = torch.randn(shape, generator=generator)
    actions = torch.randint(0, s.num_actions, (batch, s.action_window), generator=generator)
    return history, actions


def velocity(model, noisy, history, actions, drop):
    t, level = torch.full((len(noisy),), 0.5), torch.zeros(len(noisy))
    with torch.no_grad():
        return model.denoiser(noisy, t, history, actions, level, torch.full((len(noisy),), drop))


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_the_config_chooses_the_backbone_and_its_velocity_follows_the_actions(backbone):
    model = make_model(backbone)
    assert type(model.denoiser.transformer) is BACKBONES[backbone].network_class
    assert model.settings.backbone == backbone
    history, actions = make_inputs(model)
    noisy, other_actions = torch.randn_like(history[:, 0]), (actions + 1) % len(ACTIONS)
    assert velocity(model, noisy, history, actions, False).shape == noisy.shape
    assert not torch.allclose(
        velocity(model, noisy, history, actions, False), velocity(model, noisy, history, other_actions, False)
    )
    # the null action: the actions are not seen at all
    assert torch.allclose(
        velocity(model, noisy, history, actions, True), velocity(model, noisy, history, other_actions, True)
    )


def test_an_unknown_backbone_is_refused_naming_the_known_ones():
    assert load_config(REPOSITORY / "configs/tiny.yaml").dit.backbone == "sana"  # the default
    with pytest.raises(ConfigError, match="unknown dit.backbone 'vit'; the backbones are sana, unet"):
        make_model("sana", "dit.backbone=vit")


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_widening_for_action_planes_keeps_each_backbones_predictions(backbone):
    model = make_model(backbone, "dit.action_planes=false", "dit.held_action_planes=false")
    history, actions = make_inputs(model)
    noisy = torch.randn_like(history[:, 0])
    before = velocity(model, noisy, history, actions, False)
    wider = with_more_inputs(model.denoiser.transformer, len(ACTIONS))
    model.denoiser = Denoiser(wider, model.denoiser.conditioner, model.settings.wrap_edges)
    assert model.denoiser.action_planes
    assert torch.allclose(velocity(model, noisy, history, actions, False), before, atol=1e-6)


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
@pytest.mark.parametrize("wrap_edges", [False, True])
def test_a_wrapping_network_carries_what_leaves_one_edge_in_at_the_other(backbone, wrap_edges):
    model = make_model(backbone, f"dit.wrap_edges={str(wrap_edges).lower()}")
    history, actions = make_inputs(model)
    noisy = torch.randn_like(history[:, 0])
    # a shift by one cell of the coarsest grid (the U-Net's last level, Sana's patches), so that
    # the downsampling sees the same grid
    network = model.denoiser.transformer
    shift = (
        network.config.patch_size if backbone == "sana" else 2 ** (len(network.config.block_out_channels) - 1)
    )
    moved = velocity(model, noisy.roll(shift, -1), history.roll(shift, -1), actions, False)
    unmoved = velocity(model, noisy, history, actions, False).roll(shift, -1)
    assert torch.allclose(moved, unmoved, atol=1e-5) == wrap_edges


def test_sanas_wrapping_feed_forward_computes_diffusers_circular_one_and_keeps_its_weight_names():
    model = make_model("sana", "dit.wrap_edges=true").double()
    blocks = model.denoiser.transformer.transformer_blocks
    assert all(isinstance(block.ff, CircularMixFFN) for block in blocks)
    ours = blocks[0].ff
    theirs = ours.unwrapped()
    theirs.conv_depth.padding_mode = "circular"  # what diffusers' module needs to wrap
    assert isinstance(theirs, GLUMBConv) and theirs.state_dict().keys() == ours.state_dict().keys()
    planes = torch.randn(2, 5, 6, ours.conv_inverted.in_channels, dtype=torch.double).permute(0, 3, 1, 2)
    inputs = [planes.clone().requires_grad_() for _ in range(2)]
    outputs = [ff(x) for ff, x in zip((ours, theirs), inputs, strict=True)]
    assert torch.allclose(*outputs)
    gradients = [torch.autograd.grad(y.pow(2).sum(), [x, ff.conv_depth.weight]) for ff, x, y in
                 zip((ours, theirs), inputs, outputs, strict=True)]  # fmt: skip
    for a, b in zip(*gradients, strict=True):
        assert torch.allclose(a, b)
    with torch.no_grad():  # where play runs: another code path
        assert torch.allclose(ours(planes), theirs(planes))
    # zero padding again: diffusers' own module comes back, under the same weight names
    names = model.denoiser.state_dict().keys()
    model.denoiser = Denoiser(model.denoiser.transformer, model.denoiser.conditioner, wrap_edges=False)
    assert all(type(block.ff) is GLUMBConv for block in blocks)
    assert model.denoiser.state_dict().keys() == names


def test_a_unet_checkpoint_names_its_backbone_and_loads_as_it_was_saved(tmp_path):
    model = make_model("unet")
    model.save(tmp_path / "checkpoint")
    dit_config = json.loads((tmp_path / "checkpoint" / "dit" / "config.json").read_text())
    assert dit_config["_class_name"] == "UNet2DConditionModel"
    loaded = worldmodel.load(tmp_path / "checkpoint")
    assert loaded.settings.backbone == "unet" and loaded.denoiser.wrap_edges
    history, actions = make_inputs(model)
    outputs = [
        m.predict_next(history, actions, generator=torch.Generator().manual_seed(3)) for m in (model, loaded)
    ]
    assert torch.equal(*outputs)


def copy_of(checkpoint: Path, tmp_path: Path) -> Path:
    path = tmp_path / "checkpoint"
    shutil.copytree(checkpoint, path)
    return path


def test_a_sana_checkpoint_whose_settings_ask_for_a_unet_is_refused(tiny_checkpoint, tmp_path):
    path = copy_of(tiny_checkpoint, tmp_path)
    settings_file = path / "world_model.json"
    record = json.loads(settings_file.read_text())
    record["config"]["dit"]["backbone"] = "unet"
    settings_file.write_text(json.dumps(record))
    with pytest.raises(CheckpointError) as error:
        load(path)
    message = str(error.value)
    assert f"{path / 'dit' / 'config.json'} holds a SanaTransformer2DModel (the 'sana' backbone's" in message
    assert f"{settings_file} asks for dit.backbone 'unet', a UNet2DConditionModel" in message


def test_a_dit_part_that_names_another_network_is_refused(tiny_checkpoint, tmp_path):
    path = copy_of(tiny_checkpoint, tmp_path)
    config_file = path / "dit" / "config.json"
    for held, says in [
        ("UNet2DConditionModel", "the 'unet' backbone's"),
        ("DiTTransformer2DModel", "no backbone's"),
    ]:
        config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "_class_name": held}))
        with pytest.raises(
            CheckpointError, match=f"holds a {held} \\({says} network\\) .* asks for dit.backbone 'sana'"
        ):
            load(path)


def test_a_checkpoint_of_a_backbone_this_code_lacks_is_refused(tiny_checkpoint, tmp_path):
    path = copy_of(tiny_checkpoint, tmp_path)
    record = json.loads((path / "world_model.json").read_text())
    record["config"]["dit"]["backbone"] = "vit"
    (path / "world_model.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="asks for dit.backbone 'vit', which this code does not have"):
        load(path)


def test_a_checkpoint_written_before_backbones_loads_as_sana(tmp_path):
    make_model("sana").save(tmp_path / "checkpoint")
    settings_file = tmp_path / "checkpoint" / "world_model.json"
    record = json.loads(settings_file.read_text())
    del record["config"]["dit"]["backbone"]  # as checkpoints were written before there was a choice
    settings_file.write_text(json.dumps(record))
    write_checksums(tmp_path / "checkpoint")
    assert worldmodel.load(tmp_path / "checkpoint").settings.backbone == "sana"


def test_worldmodel_load_is_the_checkpoint_loader_and_importing_the_package_stays_light():
    from worldmodel import load as package_load

    assert package_load is load is worldmodel.load
    code = "import sys, worldmodel; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPOSITORY, capture_output=True, text=True)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_a_shallower_student_keeps_evenly_spaced_blocks_of_its_teacher():
    teacher = make_model("sana", "dit.num_layers=5").denoiser.transformer
    sana = BACKBONES["sana"]
    student = sana.with_fewer_layers(teacher, 3)
    assert student.config.num_layers == 3 and len(student.transformer_blocks) == 3
    for new, old in enumerate((0, 2, 4)):  # first, middle, last
        for (name, kept), (_, taught) in zip(
            student.transformer_blocks[new].state_dict().items(),
            teacher.transformer_blocks[old].state_dict().items(),
            strict=True,
        ):
            assert torch.equal(kept, taught), name
    assert torch.equal(student.proj_out.weight, teacher.proj_out.weight)
    with pytest.raises(ConfigError, match="cannot be cut to 6 layers"):
        sana.with_fewer_layers(teacher, 6)
    with pytest.raises(ConfigError, match="cannot be cut to fewer layers"):
        BACKBONES["unet"].with_fewer_layers(make_model("unet").denoiser.transformer, 1)


def test_a_wrapping_sana_runs_in_onnx_runtime_at_any_batch_size():
    from worldmodel.onnx_runtime import on_onnx_runtime

    model = make_model("sana", "dit.wrap_edges=true")
    fast = on_onnx_runtime(model)
    history, actions = make_inputs(model, batch=5)  # the export traced batch 3
    noisy = torch.randn_like(history[:, 0])
    assert torch.allclose(
        velocity(fast, noisy, history, actions, False),
        velocity(model, noisy, history, actions, False),
        atol=1e-4,
    )
