"""The world model as one object (autoencoder, denoiser, heads, settings) and its checkpoint format:
one ``save_pretrained`` directory per part plus ``world_model.json`` of the world-model settings."""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderDC, SanaTransformer2DModel
from torch import nn

from worldmodel.checkpoint_files import CheckpointFileError, interrupted_save_hint, publish, verify_checksums
from worldmodel.config import FlowConfig, WorldModelConfig
from worldmodel.dit import ActionConditioner, Denoiser, build_transformer, input_channels
from worldmodel.flow import noise_history
from worldmodel.heads import RewardEndHeads
from worldmodel.sampler import FlowSampler
from worldmodel.vae import build_vae, decode_latents, encode_frames, spatial_compression

CHECKPOINT_FORMAT = "pacman-worldmodel/checkpoint"
CHECKPOINT_VERSION = 1
SETTINGS_FILE = "world_model.json"
PARTS = {
    "vae": AutoencoderDC,
    "dit": SanaTransformer2DModel,
    "conditioner": ActionConditioner,
    "heads": RewardEndHeads,
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message says what differs and what to do."""


@dataclass
class SamplerDefaults:
    sampling_steps: int = 2
    guidance_scale: float = 1.5
    context_noise: float = 0.05
    scheduler: str = "euler"
    timestep_shift: float = 1.0

    @classmethod
    def from_flow(cls, flow: FlowConfig) -> SamplerDefaults:
        return cls(
            sampling_steps=flow.sampling_steps,
            guidance_scale=flow.guidance_scale,
            context_noise=flow.context_noise,
            scheduler=flow.scheduler,
            timestep_shift=flow.timestep_shift,
        )


@dataclass
class WorldModelSettings:
    """Everything besides weights that a user of the model needs: what game, what frames, what actions."""

    env_id: str
    action_meanings: list[str]
    frame_size: int
    history_length: int
    latent_channels: int
    latent_size: int
    sampler: SamplerDefaults = field(default_factory=SamplerDefaults)
    config: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    # Actions the denoiser reads, the one being taken included (checkpoints before it: K + 1).
    action_window: int = 0

    def __post_init__(self):
        self.action_window = self.action_window or self.history_length + 1

    @property
    def num_actions(self) -> int:
        return len(self.action_meanings)

    def recording_mismatches(self, trajectories) -> list[str]:
        """Why a recorded file (``recorder.load``) cannot feed this model: empty when it can."""
        problems = []
        if trajectories.env_id != self.env_id:
            problems.append(f"it records {trajectories.env_id!r} but the model plays {self.env_id!r}")
        model_size = (self.frame_size, self.frame_size)
        if tuple(trajectories.frame_size) != model_size:
            problems.append(f"its frames are {tuple(trajectories.frame_size)}, the model's {model_size}")
        if list(trajectories.action_meanings) != list(self.action_meanings):
            problems.append(
                f"its actions are {trajectories.action_meanings}, the model's {self.action_meanings}"
            )
        return problems


class WorldModel(nn.Module):
    def __init__(self, settings: WorldModelSettings, vae, transformer, conditioner, heads):
        super().__init__()
        self.settings = settings
        self.vae = vae
        wrap_edges = settings.config.get("dit", {}).get("wrap_edges", False)
        self.denoiser = Denoiser(transformer, conditioner, wrap_edges)
        self.heads = heads

    @classmethod
    def from_config(cls, config: WorldModelConfig, action_meanings: list[str]) -> WorldModel:
        """A freshly initialised model for ``config`` and a game with these actions."""
        latent_size = config.frame_size // spatial_compression(config.vae)
        settings = WorldModelSettings(
            env_id=config.env_id,
            action_meanings=list(action_meanings),
            frame_size=config.frame_size,
            history_length=config.history_length,
            latent_channels=config.vae.latent_channels,
            latent_size=latent_size,
            sampler=SamplerDefaults.from_flow(config.flow),
            config=config.to_dict(),
            action_window=config.actions_seen,
        )
        vae = build_vae(config.vae)
        transformer = build_transformer(
            config.dit, config.vae.latent_channels, config.history_length, latent_size, len(action_meanings)
        )
        conditioner = ActionConditioner(
            len(action_meanings), config.history_length, config.dit.condition_dim, config.actions_seen
        )
        heads = RewardEndHeads(config.vae.latent_channels, len(action_meanings), config.heads.hidden_channels)
        return cls(settings, vae, transformer, conditioner, heads)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ---- the operations a game loop needs -------------------------------------------------------
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (N, H, W, 3) -> latents (N, C, h, w)."""
        return encode_frames(self.vae, frames.to(self.device))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents (N, C, h, w) -> uint8 frames (N, H, W, 3)."""
        return decode_latents(self.vae, latents)

    @torch.no_grad()
    def predict_next(
        self,
        history_latents: torch.Tensor,  # (B, K, C, h, w)
        actions: torch.Tensor,  # (B, W) the action window; the last is the action being taken now
        sampling_steps: int | None = None,
        guidance_scale: float | None = None,
        context_noise: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Samples the next latent (B, C, h, w) given the history and the actions."""
        defaults = self.settings.sampler
        sampler = self._sampler(
            sampling_steps or defaults.sampling_steps,
            defaults.guidance_scale if guidance_scale is None else guidance_scale,
            defaults.scheduler,
            defaults.timestep_shift,
        )
        level_value = defaults.context_noise if context_noise is None else context_noise
        batch = history_latents.shape[0]
        level = torch.full((batch,), float(level_value), device=history_latents.device)
        history = noise_history(history_latents, level, generator=generator)

        doubled = None  # the conditioning repeated for the null-action pass, built on first need

        def velocity_fn(noisy, timesteps, drop_actions):
            nonlocal doubled
            if noisy.shape[0] == batch:
                return self.denoiser(noisy, timesteps, history, actions, level, drop_actions)
            if doubled is None:  # the sampler batches the conditional and null-action passes together
                doubled = (history.repeat(2, 1, 1, 1, 1), actions.repeat(2, 1), level.repeat(2))
            return self.denoiser(noisy, timesteps, *doubled, drop_actions)

        shape = (batch, *history_latents.shape[2:])
        return sampler.sample(
            velocity_fn, shape, generator=generator, device=history.device, dtype=history.dtype
        )

    @functools.lru_cache(maxsize=16)  # noqa: B019 - a handful of settings per model, kept while it lives
    def _sampler(self, num_steps: int, guidance_scale: float, scheduler: str, shift: float) -> FlowSampler:
        # Built once per setting: a game loop asks for the same sampler every frame.
        return FlowSampler(
            num_steps=num_steps, guidance_scale=guidance_scale, scheduler=scheduler, shift=shift
        )

    @torch.no_grad()
    def predict_reward_end(
        self, previous_latents, next_latents, actions
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(reward (B,), probability that the episode ended (B,)) for the step previous -> next."""
        reward, end_logit = self.heads(previous_latents, next_latents, actions)
        return self.heads.reward(reward), torch.sigmoid(end_logit)

    @property
    def end_threshold(self) -> float:
        """The predicted end probability above which an episode ends (chosen when the heads trained)."""
        return float(self.heads.config.end_threshold)

    # ---- checkpoint ---------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Writes the checkpoint whole beside ``path`` and swaps it in (a kill never leaves half of one),
        with a checksum of every file."""
        parts = {
            "vae": self.vae,
            "dit": self.denoiser.transformer,
            "conditioner": self.denoiser.conditioner,
            "heads": self.heads,
        }
        record = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, **asdict(self.settings)}

        def write(directory: Path) -> None:
            for name, module in parts.items():
                module.save_pretrained(directory / name)
            (directory / SETTINGS_FILE).write_text(json.dumps(record, indent=2))

        publish(Path(path), write)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> WorldModel:
        path = Path(path)
        settings = read_settings(path)
        parts = {name: _load_part(path, name, part_cls) for name, part_cls in PARTS.items()}
        _check_parts_match(path, settings, parts)
        try:  # last: a part from another config or in another format has the more precise message above
            verify_checksums(path)
        except CheckpointFileError as error:
            raise CheckpointError(str(error)) from None
        model = cls(settings, parts["vae"], parts["dit"], parts["conditioner"], parts["heads"])
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
    if version != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} is checkpoint format version {version}, this code reads version {CHECKPOINT_VERSION}; "
            "use the matching release of this project or retrain with train.py"
        )
    try:
        sampler = SamplerDefaults(**record.pop("sampler"))
        fields = {k: v for k, v in record.items() if k not in ("format", "format_version")}
        return WorldModelSettings(sampler=sampler, **fields)
    except (KeyError, TypeError) as error:
        raise CheckpointError(f"{settings_file} does not have the expected settings ({error})") from None


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


def load(path: str | Path, device: str | torch.device = "cpu") -> WorldModel:
    """Loads a world-model checkpoint directory, offline."""
    return WorldModel.load(path, device)
