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

from recorder import RESET_ACTION
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


def build_transformer(
    config: DiTConfig, latent_channels: int, history_length: int, latent_size: int, num_actions: int
):
    inner_dim = config.num_attention_heads * config.attention_head_dim
    if config.held_action_planes and not config.action_planes:
        raise ValueError("dit.held_action_planes needs dit.action_planes: true")
    channels = input_channels(
        latent_channels, history_length, num_actions, config.action_planes, config.held_action_planes
    )
    transformer = SanaTransformer2DModel(
        in_channels=channels,
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
        velocity = self.transformer(model_input, tokens, timesteps * 1000, return_dict=False)[0]
        return velocity  # (B, C, h, w)
