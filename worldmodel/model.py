"""The world model as one object: autoencoder, denoiser, reward/end heads and the settings a user of
the model needs. Its checkpoint format is in worldmodel/checkpoint.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from worldmodel.config import SamplerConfig, WorldModelConfig
from worldmodel.denoiser import ActionConditioner, Denoiser, build_network
from worldmodel.heads import RewardEndHeads
from worldmodel.sampler import Sampler, make_sampler
from worldmodel.vae import build_vae, decode_latents, encode_frames, spatial_compression


@dataclass
class WorldModelSettings:
    """Everything besides weights that a user of the model needs: what game, what frames, what actions.

    Each setting is kept once, in the config the model was built from; the rest is read from it.
    """

    action_meanings: list[str]
    config: WorldModelConfig = field(default_factory=WorldModelConfig)
    training: dict[str, Any] = field(default_factory=dict)  # what each training stage did

    @property
    def num_actions(self) -> int:
        return len(self.action_meanings)

    @property
    def env_id(self) -> str:
        return self.config.env_id

    @property
    def frame_size(self) -> int:
        return self.config.frame_size

    @property
    def history_length(self) -> int:
        return self.config.history_length

    @property
    def action_window(self) -> int:
        """Actions the denoiser reads, the one being taken included."""
        return self.config.actions_seen

    @property
    def latent_channels(self) -> int:
        return self.config.vae.latent_channels

    @property
    def latent_size(self) -> int:
        return self.config.frame_size // spatial_compression(self.config.vae)

    @property
    def sampler(self) -> SamplerConfig:
        """The sampler's defaults: the ``sampler`` section of the config."""
        return self.config.sampler

    @property
    def backbone(self) -> str:
        """The denoiser's backbone, a key of worldmodel.backbones.BACKBONES."""
        return self.config.dit.backbone

    @property
    def wrap_edges(self) -> bool:
        """Whether the denoiser's convolutions wrap around the board's edges: a padding mode, no weight,
        so only the config says it (the action planes, weights, the denoiser reads from its input width)."""
        return self.config.dit.wrap_edges

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


DECODE_CHUNK = 256


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
        settings = WorldModelSettings(list(action_meanings), config)
        latent_size = settings.latent_size
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
        """latents (N, C, h, w) -> uint8 frames (N, H, W, 3), DECODE_CHUNK frames a pass: decoding a
        whole evaluation's rollouts in one pass made the evaluation peak at 18 GB (4 GB in chunks)."""
        return torch.cat([self.draw(part) for part in latents.split(DECODE_CHUNK)])

    def draw(self, latents: torch.Tensor) -> torch.Tensor:
        """One decoder pass: latents (N, C, h, w) -> uint8 frames (N, H, W, 3)."""
        return decode_latents(self.vae, latents)

    @property
    def sampler(self) -> Sampler:
        """The checkpoint's default sampler; ``model.sampler.replace(guidance_scale=1.0)`` for another."""
        return make_sampler(self.settings.sampler)

    @torch.no_grad()
    def predict_next(
        self,
        history_latents: torch.Tensor,  # (B, K, C, h, w)
        actions: torch.Tensor,  # (B, W) the action window; the last is the action being taken now
        sampler: Sampler | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
    ) -> torch.Tensor:
        """Samples the next latent (B, C, h, w) given the history and the actions (default sampler: the
        checkpoint's)."""
        return (sampler or self.sampler).sample(self.denoiser, history_latents, actions, generator)

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
