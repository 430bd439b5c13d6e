"""The world model as one object: autoencoder, denoiser, reward/end heads and the settings a user of
the model needs. Its checkpoint format is in worldmodel/checkpoint.py."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from worldmodel.config import DiTConfig, FlowConfig, WorldModelConfig
from worldmodel.denoiser import ActionConditioner, Denoiser, build_network
from worldmodel.flow import noise_history
from worldmodel.heads import RewardEndHeads
from worldmodel.sampler import FlowSampler
from worldmodel.vae import build_vae, decode_latents, encode_frames, spatial_compression


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

    @property
    def backbone(self) -> str:
        """The denoiser's backbone, a key of worldmodel.backbones.BACKBONES (checkpoints from before
        the setting: Sana)."""
        return self.config.get("dit", {}).get("backbone", DiTConfig.backbone)

    @property
    def wrap_edges(self) -> bool:
        """Whether the denoiser's convolutions wrap around the board's edges: a padding mode, no weight,
        so only the config says it (the action planes, weights, the denoiser reads from its input width)."""
        return self.config.get("dit", {}).get("wrap_edges", False)

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
        self.denoiser = Denoiser(transformer, conditioner, settings.wrap_edges)
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
        transformer = build_network(
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

    # ---- checkpoint (worldmodel/checkpoint.py, which builds WorldModels, so imported on use) ---------
    def save(self, path: str | Path) -> None:
        """Writes the checkpoint whole beside ``path`` and swaps it in, with a checksum of every file."""
        from worldmodel.checkpoint import save

        save(self, path)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> WorldModel:
        """Loads a world-model checkpoint directory, offline (``worldmodel.load``)."""
        from worldmodel.checkpoint import load

        return load(path, device)
