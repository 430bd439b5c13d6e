"""The denoiser: a small ``diffusers.SanaTransformer2DModel`` whose input projection takes the
noisy next latent and K history latents (history conv_in), optionally one-hot planes of the action
being taken, and whose cross-attention reads action tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import ModelMixin, SanaTransformer2DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn

from worldmodel.config import DiTConfig


class ActionConditioner(ModelMixin, ConfigMixin):
    """Turns the last K+1 actions and the context-noise level into cross-attention tokens.

    Each action token is an action embedding plus a learned time-offset embedding (which of the
    K+1 steps it belongs to). For classifier-free guidance a learned null action replaces every
    action token; the noise-level token is kept so the unconditional pass sees the same history.
    """

    @register_to_config
    def __init__(self, num_actions: int = 5, history_length: int = 4, condition_dim: int = 64):
        super().__init__()
        self.null_action = num_actions  # one extra embedding row
        self.action_embedding = nn.Embedding(num_actions + 1, condition_dim)
        self.offset_embedding = nn.Parameter(torch.randn(history_length + 1, condition_dim) * 0.02)
        self.noise_level_proj = Timesteps(num_channels=64, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.noise_level_embedding = TimestepEmbedding(in_channels=64, time_embed_dim=condition_dim)

    def forward(
        self, actions: torch.Tensor, context_noise: torch.Tensor, drop_actions: torch.Tensor
    ) -> torch.Tensor:
        actions = torch.where(drop_actions[:, None], self.null_action, actions)  # (B, K+1)
        action_tokens = self.action_embedding(actions) + self.offset_embedding  # (B, K+1, D)
        level = self.noise_level_proj(context_noise * 1000).to(action_tokens.dtype)  # (B, 64)
        noise_token = self.noise_level_embedding(level)[:, None]  # (B, 1, D)
        return torch.cat([action_tokens, noise_token], dim=1)  # (B, K+2, D)


def input_channels(latent_channels: int, history_length: int, num_actions: int, action_planes: bool) -> int:
    """Noisy next latent + K history latents (+ one plane per action when ``action_planes``)."""
    return latent_channels * (history_length + 1) + (num_actions if action_planes else 0)


def build_transformer(
    config: DiTConfig, latent_channels: int, history_length: int, latent_size: int, num_actions: int
):
    inner_dim = config.num_attention_heads * config.attention_head_dim
    transformer = SanaTransformer2DModel(
        in_channels=input_channels(latent_channels, history_length, num_actions, config.action_planes),
        out_channels=latent_channels,
        num_attention_heads=config.num_attention_heads,
        attention_head_dim=config.attention_head_dim,
        num_layers=config.num_layers,
        num_cross_attention_heads=config.num_attention_heads,
        cross_attention_head_dim=config.attention_head_dim,
        cross_attention_dim=inner_dim,
        caption_channels=config.condition_dim,
        mlp_ratio=config.mlp_ratio,
        sample_size=latent_size,
        patch_size=config.patch_size,
    )
    # DiT's zero-init of the output layer: the untrained model predicts zero velocity, a calm start.
    nn.init.zeros_(transformer.proj_out.weight)
    nn.init.zeros_(transformer.proj_out.bias)
    return transformer


def with_more_inputs(transformer: SanaTransformer2DModel, extra: int) -> SanaTransformer2DModel:
    """The same transformer taking ``extra`` more input channels, weighted zero so it computes what it did.

    How a trained denoiser gains action planes: training then learns to use them.
    """
    config = {**transformer.config, "in_channels": transformer.config.in_channels + extra}
    wider = SanaTransformer2DModel.from_config(config)
    state = transformer.state_dict()
    weight = state["patch_embed.proj.weight"]  # (D, in_channels, p, p)
    state["patch_embed.proj.weight"] = torch.cat(
        [weight, weight.new_zeros(weight.shape[0], extra, *weight.shape[2:])], dim=1
    )
    wider.load_state_dict(state)
    return wider


def set_wrap_edges(transformer: SanaTransformer2DModel, wrap: bool) -> None:
    """Pads every spatial convolution of ``transformer`` circularly (``wrap``) or with zeros.

    A padding mode is not a weight, so the same weights serve either; it is not in diffusers'
    config either, so the checkpoint's ``dit.wrap_edges`` says which one a model was trained with.
    """
    for module in transformer.modules():
        if isinstance(module, nn.Conv2d) and any(module.padding):
            module.padding_mode = "circular" if wrap else "zeros"


class Denoiser(nn.Module):
    """Velocity prediction v(x_t, t | history, actions): the transformer and its conditioner together."""

    def __init__(
        self, transformer: SanaTransformer2DModel, conditioner: ActionConditioner, wrap_edges: bool = False
    ):
        super().__init__()
        set_wrap_edges(transformer, wrap_edges)
        self.transformer = transformer
        self.conditioner = conditioner
        self.wrap_edges = wrap_edges
        num_actions, history_length = conditioner.config.num_actions, conditioner.config.history_length
        latents_only = input_channels(transformer.config.out_channels, history_length, num_actions, False)
        self.action_planes = transformer.config.in_channels == latents_only + num_actions

    def forward(
        self,
        noisy_latents: torch.Tensor,  # (B, C, h, w)
        timesteps: torch.Tensor,  # (B,) flow time in [0, 1]; 1 is pure noise
        history_latents: torch.Tensor,  # (B, K, C, h, w)
        actions: torch.Tensor,  # (B, K+1) long; the last one produces the frame being denoised
        context_noise: torch.Tensor,  # (B,) noise level already applied to history_latents
        drop_actions: torch.Tensor,  # (B,) bool; True replaces the actions with the null token
    ) -> torch.Tensor:
        inputs = [noisy_latents, history_latents.flatten(1, 2)]  # (B, C, h, w), (B, K*C, h, w)
        if self.action_planes:  # the action being taken, one-hot; all zeros is the null action
            planes = F.one_hot(actions[:, -1], self.conditioner.config.num_actions).to(noisy_latents.dtype)
            planes = planes * ~drop_actions[:, None]  # (B, A)
            inputs.append(planes[:, :, None, None].expand(-1, -1, *noisy_latents.shape[2:]))
        model_input = torch.cat(inputs, dim=1)  # (B, C*(K+1) [+ A], h, w)
        tokens = self.conditioner(actions, context_noise, drop_actions)  # (B, K+2, D)
        tokens = tokens.to(model_input.dtype)
        velocity = self.transformer(model_input, tokens, timesteps * 1000, return_dict=False)[0]
        return velocity  # (B, C, h, w)
