"""The U-Net backbone: ``diffusers.UNet2DConditionModel``, convolutional levels with cross-attention
to the action tokens at every level (DIAMOND's denoiser is a U-Net too). The input planes enter
through its first convolution, as they enter Sana's patch embedding."""

from __future__ import annotations

import math

import torch
from diffusers import UNet2DConditionModel
from torch import nn

from worldmodel.backbones.base import Backbone
from worldmodel.config import ConfigError, DiTConfig


class UNetBackbone(Backbone):
    network_class = UNet2DConditionModel
    input_weight = "conv_in.weight"  # (C0, in_channels, 3, 3)

    def build(
        self, config: DiTConfig, in_channels: int, out_channels: int, token_dim: int, latent_size: int
    ) -> UNet2DConditionModel:
        channels = tuple(config.unet.block_out_channels)
        if any(width % config.attention_head_dim for width in channels):
            raise ConfigError(
                f"dit.unet.block_out_channels {list(channels)} must be multiples of "
                f"dit.attention_head_dim ({config.attention_head_dim})"
            )
        levels = len(channels)
        unet = UNet2DConditionModel(
            sample_size=latent_size,
            in_channels=in_channels,
            out_channels=out_channels,
            down_block_types=("CrossAttnDownBlock2D",) * levels,
            up_block_types=("CrossAttnUpBlock2D",) * levels,
            block_out_channels=channels,
            layers_per_block=config.unet.layers_per_block,
            # diffusers reads this argument as the number of heads per level (a naming it keeps for
            # compatibility); heads of dit.attention_head_dim channels each.
            attention_head_dim=tuple(width // config.attention_head_dim for width in channels),
            cross_attention_dim=token_dim,  # the tokens are read as they come, no projection
            norm_num_groups=math.gcd(32, *channels),  # GroupNorm's groups must divide every width
        )
        nn.init.zeros_(unet.conv_out.weight)
        nn.init.zeros_(unet.conv_out.bias)
        return unet

    def velocity(
        self,
        network: UNet2DConditionModel,
        model_input: torch.Tensor,
        timesteps: torch.Tensor,
        tokens: torch.Tensor,
    ) -> torch.Tensor:
        # On diffusers' 0-1000 timestep scale, as the Sana backbone gives it.
        return network(
            sample=model_input, timestep=timesteps * 1000, encoder_hidden_states=tokens, return_dict=False
        )[0]
