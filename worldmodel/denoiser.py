"""The denoiser, whatever its backbone: the noisy next latent and K history latents concatenated on
channels (history conv_in), optionally one-hot planes of the action being taken and of the held key,
and the action tokens, given to the network the config's ``dit.backbone`` builds
(worldmodel/backbones/)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn

from recorder import RESET_ACTION
from worldmodel.backbones import backbone_named, backbone_of
from worldmodel.config import DiTConfig


class ActionConditioner(ModelMixin, ConfigMixin):
    """Turns the action window (the last W actions) and the context-noise level into cross-attention tokens.

    Each action token is an action embedding plus a learned time-offset embedding (which of the
    W steps it belongs to); W is ``action_window``, K + 1 for checkpoints from before it existed. For classifier-free guidance a learned null action replaces every
    action token; the noise-level token is kept so the unconditional pass sees the same history.
    """

    @register_to_config
    def __init__(
        self,
        num_actions: int = 5,
        history_length: int = 4,
        condition_dim: int = 64,
        action_window: int | None = None,
    ):
        super().__init__()
        self.null_action = num_actions  # one extra embedding row
        self.window = action_window or history_length + 1
        self.action_embedding = nn.Embedding(num_actions + 1, condition_dim)
        self.offset_embedding = nn.Parameter(torch.randn(self.window, condition_dim) * 0.02)
        self.noise_level_proj = Timesteps(num_channels=64, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.noise_level_embedding = TimestepEmbedding(in_channels=64, time_embed_dim=condition_dim)

    def forward(
        self, actions: torch.Tensor, context_noise: torch.Tensor, drop_actions: torch.Tensor
    ) -> torch.Tensor:
        actions = torch.where(drop_actions[:, None], self.null_action, actions)  # (B, W)
        action_tokens = self.action_embedding(actions) + self.offset_embedding  # (B, W, D)
        level = self.noise_level_proj(context_noise * 1000).to(action_tokens.dtype)  # (B, 64)
        noise_token = self.noise_level_embedding(level)[:, None]  # (B, 1, D)
        return torch.cat([action_tokens, noise_token], dim=1)  # (B, W+1, D)


def input_channels(
    latent_channels: int,
    history_length: int,
    num_actions: int,
    action_planes: bool,
    held_planes: bool = False,
) -> int:
    """Noisy next latent + K history latents (+ one plane per action for the action being taken,
    and as many for the held key)."""
    return latent_channels * (history_length + 1) + num_actions * (int(action_planes) + int(held_planes))


def held_keys(actions: torch.Tensor, no_key: int) -> torch.Tensor:
    """(B,) the last action in each window that pressed a key, or ``no_key`` where none did."""
    position = torch.arange(actions.shape[1], device=actions.device)  # (W,)
    last_pressed = torch.where(actions != no_key, position, -1).amax(dim=1)  # (B,)
    held = actions.gather(1, last_pressed.clamp(min=0)[:, None])[:, 0]
    return torch.where(last_pressed >= 0, held, no_key)


def one_hot_planes(actions: torch.Tensor, num_actions: int, keep: torch.Tensor, like: torch.Tensor):
    """(B, A, h, w) one-hot planes of ``actions`` (B,), all zero where ``keep`` is False."""
    planes = F.one_hot(actions, num_actions).to(like.dtype) * keep[:, None]  # (B, A)
    return planes[:, :, None, None].expand(-1, -1, *like.shape[2:])


def build_network(
    config: DiTConfig, latent_channels: int, history_length: int, latent_size: int, num_actions: int
):
    """A fresh network of the config's backbone for these latents and actions."""
    if config.held_action_planes and not config.action_planes:
        raise ValueError("dit.held_action_planes needs dit.action_planes: true")
    channels = input_channels(
        latent_channels, history_length, num_actions, config.action_planes, config.held_action_planes
    )
    backbone = backbone_named(config.backbone)
    return backbone.build(config, channels, latent_channels, config.condition_dim, latent_size)


def with_more_inputs(network: ModelMixin, extra: int) -> ModelMixin:
    """``network`` taking ``extra`` more input channels, weighted zero so it computes what it did:
    how a trained denoiser gains action planes (training then learns to use them)."""
    return backbone_of(network).with_more_inputs(network, extra)


class Denoiser(nn.Module):
    """Velocity prediction v(x_t, t | history, actions): the backbone's network and the action
    conditioner together. It assembles the network's input planes and tokens; the backbone runs it.

    The network is the attribute ``transformer`` whatever the backbone: the weights, EMA and optimiser
    of saved training states are named after it.
    """

    def __init__(self, transformer: ModelMixin, conditioner: ActionConditioner, wrap_edges: bool = False):
        super().__init__()
        self.backbone = backbone_of(transformer)  # stateless, so not a submodule
        self.backbone.set_wrap_edges(transformer, wrap_edges)
        self.transformer = transformer
        self.conditioner = conditioner
        self.wrap_edges = wrap_edges
        # The action planes are read from the network's input width, as they are weights; the padding
        # is not, and comes from the checkpoint's config (``wrap_edges``).
        num_actions, history_length = conditioner.config.num_actions, conditioner.config.history_length
        latents_only = input_channels(transformer.config.out_channels, history_length, num_actions, False)
        self.action_planes = transformer.config.in_channels >= latents_only + num_actions
        self.held_action_planes = transformer.config.in_channels == latents_only + 2 * num_actions

    def forward(
        self,
        noisy_latents: torch.Tensor,  # (B, C, h, w)
        timesteps: torch.Tensor,  # (B,) flow time in [0, 1]; 1 is pure noise
        history_latents: torch.Tensor,  # (B, K, C, h, w)
        actions: torch.Tensor,  # (B, W) long; the last one produces the frame being denoised
        context_noise: torch.Tensor,  # (B,) noise level already applied to history_latents
        drop_actions: torch.Tensor,  # (B,) bool; True replaces the actions with the null token
    ) -> torch.Tensor:
        inputs = [noisy_latents, history_latents.flatten(1, 2)]  # (B, C, h, w), (B, K*C, h, w)
        num_actions = self.conditioner.config.num_actions
        if self.action_planes:  # the action being taken, one-hot; all zeros is the null action
            inputs.append(one_hot_planes(actions[:, -1], num_actions, ~drop_actions, noisy_latents))
        if self.held_action_planes:  # the key the game may still be acting on; zeros when none
            held = held_keys(actions, RESET_ACTION)
            inputs.append(
                one_hot_planes(held, num_actions, ~drop_actions & (held != RESET_ACTION), noisy_latents)
            )
        model_input = torch.cat(inputs, dim=1)  # (B, C*(K+1) [+ A [+ A]], h, w)
        tokens = self.conditioner(actions, context_noise, drop_actions)  # (B, W+1, D)
        tokens = tokens.to(model_input.dtype)
        velocity = self.backbone.velocity(self.transformer, model_input, timesteps, tokens)
        return velocity  # (B, C, h, w)
