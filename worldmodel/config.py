"""The one config loader: YAML presets in configs/ become typed dataclasses, with dotted
command-line overrides such as ``dit.num_layers=4`` or ``train.dit.steps=200``."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message says what to fix."""


@dataclass
class VAEConfig:
    """The DC-AE autoencoder (``diffusers.AutoencoderDC``): frames (3, H, W) <-> latents (C, H/f, W/f)."""

    latent_channels: int = 8
    # One block per level; the spatial compression f is 2 ** (len(block_out_channels) - 1).
    block_out_channels: tuple[int, ...] = (16, 32, 64)
    layers_per_block: tuple[int, ...] = (1, 1, 1)
    # The decoder's widths when they differ from the encoder's (empty: the same): a slimmer decoder,
    # distilled from a trained one (train.py --stage distill), draws each frame for less.
    decoder_block_out_channels: tuple[int, ...] = ()

    @property
    def decoder_channels(self) -> tuple[int, ...]:
        return tuple(self.decoder_block_out_channels or self.block_out_channels)


@dataclass
class UNetConfig:
    """The ``unet`` backbone (``diffusers.UNet2DConditionModel``); heads are ``dit.attention_head_dim`` wide."""

    # Channels per level; each level after the first halves the latent grid.
    block_out_channels: tuple[int, ...] = (64, 128)
    layers_per_block: int = 1


@dataclass
class DiTConfig:
    """The denoiser: its backbone (worldmodel/backbones/) and its action conditioning.

    The layer, head, patch and MLP settings are the ``sana`` backbone's; ``unet`` reads its own section
    and ``attention_head_dim``."""

    # The network inside the denoiser, a key of worldmodel.backbones.BACKBONES: "sana" or "unet".
    backbone: str = "sana"
    num_layers: int = 6
    num_attention_heads: int = 4
    attention_head_dim: int = 32
    patch_size: int = 2
    mlp_ratio: float = 2.5
    # Width of the action / context-noise tokens: Sana projects them as its caption, the U-Net reads
    # them at this width.
    condition_dim: int = 64
    # Also feed the action being taken as one-hot planes beside the latents in the input projection,
    # so every token sees it from the first layer (cross-attention alone learns to steer slowly).
    action_planes: bool = False
    # Pad the network's convolutions circularly (either backbone), so its grid is a torus: what leaves
    # one edge enters at the other, as Pacman does through the maze's side tunnel. Sana has no position
    # embedding, so there these convolutions are the denoiser's only sense of space; the walls drawn
    # in the history frames say where the board really wraps.
    wrap_edges: bool = False
    # Also feed the held key, the last key pressed in the action window, as one-hot planes: a game
    # such as Pacman keeps a requested turn until the maze allows it, long after the key is let go.
    held_action_planes: bool = False
    unet: UNetConfig = field(default_factory=UNetConfig)


@dataclass
class FlowConfig:
    """Rectified-flow training and sampling: x_t = (1 - t) x0 + t eps, target eps - x0."""

    timestep_shift: float = 1.0
    p_uncond: float = 0.1  # probability of replacing the action tokens with the null token
    max_context_noise: float = 0.3  # history latents get noise of a level drawn from U(0, max)
    # Latent cells that change between the last history frame and the target (Pacman and ghosts
    # moving, pellets eaten: a few percent of the frame) count this many times more in the loss,
    # so the game's dynamics are not drowned out by the static maze. 1 gives a plain MSE.
    changed_cell_weight: float = 1.0
    changed_cell_threshold: float = 0.5  # |change| in unit-variance latent units, largest channel


@dataclass(frozen=True)
class SamplerConfig:
    """How the next latent is sampled at play time: the checkpoint's defaults, which an env may change.
    The evaluation's ablations are how they were chosen."""

    kind: str = "flow"  # the sampler class, a key of worldmodel.sampler.SAMPLERS
    sampling_steps: int = 2
    guidance_scale: float = 1.5  # classifier-free guidance over the actions; 1 is a single pass
    context_noise: float = 0.05  # noise level put on the history latents, as in training
    scheduler: str = "euler"  # "euler" or "dpm"
    timestep_shift: float = 1.0

    def replace(self, **changes) -> SamplerConfig:
        """These settings with ``changes`` (None values keep the current ones)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


# Sampler settings that lived in ``flow`` before the ``sampler`` section existed: read from there in
# an older run's config.yaml or checkpoint so they keep loading.
MOVED_TO_SAMPLER = ("sampling_steps", "guidance_scale", "context_noise", "scheduler")


@dataclass
class HeadsConfig:
    """The reward and episode-end predictor."""

    hidden_channels: int = 32


@dataclass
class StageConfig:
    """Optimisation settings of one training stage."""

    steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 3e-4
    weight_decay: float = 0.0
    warmup_steps: int = 100
    # The last decay_steps of `steps` lower the learning rate linearly to zero (warmup-stable-decay):
    # a run stopped early can be resumed with a cooldown. 0 keeps it constant after warmup.
    decay_steps: int = 0
    gradient_accumulation_steps: int = 1
    ema_decay: float = 0.999
    save_every: int = 200  # steps between resumable training states
    eval_every: int = 500  # steps between held-out evaluations and image samples
    max_minutes: float = 0.0  # stop the stage after this wall-clock time; 0 means no limit


@dataclass
class TrainConfig:
    vae: StageConfig = field(default_factory=StageConfig)
    dit: StageConfig = field(default_factory=StageConfig)
    heads: StageConfig = field(default_factory=StageConfig)
    # One pass of the denoiser taught to land where the teacher's sampler does (train.py --stage distill).
    distill: StageConfig = field(default_factory=StageConfig)
    # A slimmer decoder (vae.decoder_block_out_channels) taught by the teacher's, before the denoiser.
    distill_decoder: StageConfig = field(default_factory=StageConfig)
    held_out_fraction: float = 0.1
    seed: int = 0
    num_workers: int = 0
    mixed_precision: str = "auto"  # "auto" uses bf16 on a GPU that supports it, else full precision


@dataclass
class WorldModelConfig:
    name: str = "pacman-64"
    env_id: str = "Pacman-v0"
    frame_size: int = 64
    history_length: int = 4  # K past frames the denoiser sees
    # Actions the denoiser reads as cross-attention tokens, the one being taken included; 0 means
    # K + 1. Longer than K + 1 so that a key pressed long ago whose effect is still to come (a
    # requested turn the game keeps until the maze allows it) is in view.
    action_window: int = 0
    vae: VAEConfig = field(default_factory=VAEConfig)
    dit: DiTConfig = field(default_factory=DiTConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def actions_seen(self) -> int:
        """The action window's length: ``action_window``, or K + 1 when that is 0."""
        return self.action_window or self.history_length + 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    """Builds dataclass ``cls`` from a mapping, naming unknown keys with a close match."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            hint = difflib.get_close_matches(key, fields, n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else f" (known: {', '.join(fields)})"
            raise ConfigError(f"unknown config key '{where}{key}'{suggestion}")
        default = (
            fields[key].default_factory() if callable(fields[key].default_factory) else fields[key].default
        )
        if dataclasses.is_dataclass(default):
            kwargs[key] = _build(type(default), value, f"{where}{key}.")
        else:
            kwargs[key] = _checked(value, default, f"{where}{key}")
    return cls(**kwargs)


def _checked(value: Any, default: Any, name: str) -> Any:
    """``value`` if it has the type of the field's ``default`` (an int where a float goes is fine),
    else a ConfigError before any work starts: ``train.dit.steps=abc`` fails here, not after a stage."""
    kinds = {bool: "true or false", int: "an integer", float: "a number", str: "a string", tuple: "a list"}
    kind = type(default)
    if kind is tuple:
        ok = isinstance(value, list | tuple) and all(
            isinstance(v, type(default[0]) if default else int) and not isinstance(v, bool) for v in value
        )
        value = tuple(value) if ok else value
    elif kind is float:
        if isinstance(value, str):  # YAML reads 1e-3 (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ConfigError(f"config key '{name}' must be {kinds.get(kind, kind.__name__)}, got {value!r}")
    return value


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value, e.g. dit.num_layers=4")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw)


def load_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> WorldModelConfig:
    """Reads a YAML preset (or the defaults when ``path`` is None) and applies ``key=value`` overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"config file {path} not found; the presets live in configs/ (e.g. configs/pacman-64.yaml)"
            )
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
    return _build(WorldModelConfig, _overridden(moved_sampler_settings(values), overrides), "")


def with_overrides(config: WorldModelConfig, overrides: list[str] | tuple[str, ...]) -> WorldModelConfig:
    """``config`` with ``key=value`` overrides applied, as on train.py's command line."""
    return _build(WorldModelConfig, _overridden(config.to_dict(), overrides), "")


def _overridden(values: dict[str, Any], overrides) -> dict[str, Any]:
    for override in overrides:
        keys, value = _parse_override(override)
        node = values
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return values


def config_from_dict(values: dict[str, Any]) -> WorldModelConfig:
    """A config from its ``to_dict()`` form, as a checkpoint stores it; keys added since take their defaults."""
    return _build(WorldModelConfig, moved_sampler_settings(values), "")


def moved_sampler_settings(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with sampler settings written in the older layout (under ``flow``) moved to ``sampler``;
    the older layout took the sampler's timestep shift from training's."""
    flow = values.get("flow")
    if not isinstance(flow, dict) or not any(key in flow for key in MOVED_TO_SAMPLER):
        return values
    sampler = {key: flow[key] for key in MOVED_TO_SAMPLER if key in flow}
    if "timestep_shift" in flow:
        sampler["timestep_shift"] = flow["timestep_shift"]
    flow = {key: value for key, value in flow.items() if key not in MOVED_TO_SAMPLER}
    return {**values, "flow": flow, "sampler": {**sampler, **(values.get("sampler") or {})}}
