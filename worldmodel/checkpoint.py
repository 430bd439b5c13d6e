"""The checkpoint format: a directory with one ``save_pretrained`` directory per part (``vae``, ``dit``:
the denoiser's backbone network, ``conditioner``, ``heads``) and ``world_model.json`` of the
world-model settings, written whole and checksummed (worldmodel/checkpoint_files.py). It loads
offline; one that does not fit this code, or whose parts do not fit each other, is refused with a
CheckpointError naming the file, what differs and what to do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderDC

from worldmodel.backbones import BACKBONES, Backbone, backbone_name, backbone_named
from worldmodel.checkpoint_files import CheckpointFileError, interrupted_save_hint, publish, verify_checksums
from worldmodel.config import ConfigError, SamplerConfig, config_from_dict
from worldmodel.denoiser import ActionConditioner, input_channels
from worldmodel.heads import RewardEndHeads
from worldmodel.model import WorldModel, WorldModelSettings

CHECKPOINT_FORMAT = "pacman-worldmodel/checkpoint"
CHECKPOINT_VERSION = 2
# Version 1 wrote the game's settings and the sampler's defaults beside the config as well; it is read
# with its sampler defaults taken from there (they were the ones the checkpoint played with).
READABLE_VERSIONS = (1, 2)
SETTINGS_FILE = "world_model.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message says what differs and what to do."""


def part_classes(backbone: Backbone) -> dict[str, type]:
    """The class each part directory holds; ``dit`` is the network of the settings' backbone."""
    return {
        "vae": AutoencoderDC,
        "dit": backbone.network_class,
        "conditioner": ActionConditioner,
        "heads": RewardEndHeads,
    }


def save(model: WorldModel, path: str | Path) -> None:
    """Writes the checkpoint whole beside ``path`` and swaps it in (a kill never leaves half of one),
    with a checksum of every file."""
    parts = {
        "vae": model.vae,
        "dit": model.denoiser.transformer,
        "conditioner": model.denoiser.conditioner,
        "heads": model.heads,
    }
    settings = model.settings
    record = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "action_meanings": list(settings.action_meanings),
        "config": settings.config.to_dict(),
        "training": settings.training,
    }

    def write(directory: Path) -> None:
        for name, module in parts.items():
            module.save_pretrained(directory / name)
        (directory / SETTINGS_FILE).write_text(json.dumps(record, indent=2))

    publish(Path(path), write)


def load(path: str | Path, device: str | torch.device = "cpu") -> WorldModel:
    """Loads a world-model checkpoint directory, offline."""
    path = Path(path)
    settings = read_settings(path)
    backbone = _checked_backbone(path, settings)
    parts = {name: _load_part(path, name, cls) for name, cls in part_classes(backbone).items()}
    _check_parts_match(path, settings, parts)
    try:  # last: a part from another config or in another format has the more precise message above
        verify_checksums(path)
    except CheckpointFileError as error:
        raise CheckpointError(str(error)) from None
    model = WorldModel(settings, parts["vae"], parts["dit"], parts["conditioner"], parts["heads"])
    return model.to(device).eval()


def read_settings(path: Path) -> WorldModelSettings:
    if not path.is_dir():
        raise CheckpointError(
            f"checkpoint directory {path} not found; pass the directory train.py wrote "
            f"(e.g. runs/pacman-64/checkpoint) or the shipped checkpoints/pacman-64{interrupted_save_hint(path)}"
        )
    settings_file = path / SETTINGS_FILE
    if not settings_file.is_file():
        raise CheckpointError(f"{path} is not a world-model checkpoint: it has no {SETTINGS_FILE}")
    try:
        record = json.loads(settings_file.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(
            f"{settings_file} is corrupt ({error}); re-export the checkpoint with train.py"
        ) from None
    if record.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} holds a '{record.get('format')}' file, not a {CHECKPOINT_FORMAT} checkpoint"
        )
    version = record.get("format_version")
    if version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{path} is checkpoint format version {version}, this code reads versions "
            f"{' and '.join(map(str, READABLE_VERSIONS))}; "
            "use the matching release of this project or retrain with train.py"
        )
    try:
        config = config_from_dict(record["config"])
        if version == 1:
            config.sampler = SamplerConfig(**record["sampler"])
        return WorldModelSettings(list(record["action_meanings"]), config, record.get("training", {}))
    except (KeyError, TypeError, ConfigError) as error:
        raise CheckpointError(f"{settings_file} does not have the expected settings ({error})") from None


def _checked_backbone(path: Path, settings: WorldModelSettings) -> Backbone:
    """The backbone the settings name; refuses a ``dit`` part whose ``_class_name`` is another's."""
    settings_file = path / SETTINGS_FILE
    try:
        backbone = backbone_named(settings.backbone)
    except ConfigError:
        raise CheckpointError(
            f"{settings_file} asks for dit.backbone {settings.backbone!r}, which this code does not have "
            f"(it has {', '.join(BACKBONES)}); use the release of this project that wrote the checkpoint"
        ) from None
    config_file = path / "dit" / "config.json"
    try:
        held = json.loads(config_file.read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError):
        return backbone  # a missing or damaged part: _load_part names it
    wanted = backbone.network_class.__name__
    if held != wanted:
        holder = backbone_name(str(held))
        what = f"the '{holder}' backbone's network" if holder else "no backbone's network"
        raise CheckpointError(
            f"{config_file} holds a {held} ({what}) but {settings_file} asks for dit.backbone "
            f"'{settings.backbone}', a {wanted}; the parts come from different runs — retrain or "
            "re-export the checkpoint with train.py"
        )
    return backbone


def _load_part(path: Path, name: str, part_cls):
    part_dir = path / name
    if not part_dir.is_dir():
        raise CheckpointError(
            f"checkpoint {path} is missing its '{name}' part ({part_dir}); it is incomplete"
        )
    try:
        # Weights are saved as safetensors; never fall back to a pickled .bin found in their place.
        return part_cls.from_pretrained(part_dir, use_safetensors=True)
    except (OSError, ValueError, RuntimeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"the '{name}' part of {path} does not match its config or is damaged: {first_line}"
        ) from None


def _check_parts_match(path: Path, settings: WorldModelSettings, parts: dict[str, Any]) -> None:
    """Refuses parts built for another history length, latent size or action set."""
    expected = {
        ("vae", "latent_channels"): settings.latent_channels,
        ("dit", "out_channels"): settings.latent_channels,
        ("conditioner", "num_actions"): settings.num_actions,
        ("conditioner", "history_length"): settings.history_length,
        ("heads", "latent_channels"): settings.latent_channels,
        ("heads", "num_actions"): settings.num_actions,
    }
    latents_only = input_channels(
        settings.latent_channels, settings.history_length, settings.num_actions, False
    )
    # no action planes, the action being taken, or it and the held key
    expected["dit", "in_channels"] = tuple(latents_only + n * settings.num_actions for n in range(3))
    expected["conditioner", "action_window"] = settings.action_window
    for (part, key), want in expected.items():
        got = parts[part].config[key]
        if (part, key) == ("conditioner", "action_window"):
            got = got or settings.history_length + 1  # conditioners from before the window: K + 1
        allowed = want if isinstance(want, tuple) else (want,)
        if got not in allowed:
            raise CheckpointError(
                f"checkpoint {path}: {part}.{key} is {got} but {SETTINGS_FILE} implies "
                f"{' or '.join(map(str, allowed))}; "
                "the parts come from different configs — retrain or re-export the checkpoint"
            )
