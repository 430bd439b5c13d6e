"""The Sana backbone: ``diffusers.SanaTransformer2DModel`` (linear attention, Mix-FFN, AdaLN-single,
no position embedding) in a small config. Its patch embedding is the history conv_in; the action
tokens are its caption, read through cross-attention."""

from __future__ import annotations

import numpy as np
import torch
from diffusers import SanaTransformer2DModel
from torch import nn

from worldmodel.backbones.base import Backbone
from worldmodel.config import ConfigError, DiTConfig


class SanaBackbone(Backbone):
    network_class = SanaTransformer2DModel
    input_weight = "patch_embed.proj.weight"  # (D, in_channels, p, p)

    def build(
        self, config: DiTConfig, in_channels: int, out_channels: int, token_dim: int, latent_size: int
    ) -> SanaTransformer2DModel:
        inner_dim = config.num_attention_heads * config.attention_head_dim
        transformer = SanaTransformer2DModel(
            in_channels=in_channels,
            out_channels=out_channels,
            num_attention_heads=config.num_attention_heads,
            attention_head_dim=config.attention_head_dim,
            num_layers=config.num_layers,
            num_cross_attention_heads=config.num_attention_heads,
            cross_attention_head_dim=config.attention_head_dim,
            cross_attention_dim=inner_dim,
            caption_channels=token_dim,
            mlp_ratio=config.mlp_ratio,
            sample_size=latent_size,
            patch_size=config.patch_size,
        )
        nn.init.zeros_(transformer.proj_out.weight)
        nn.init.zeros_(transformer.proj_out.bias)
        return transformer

    def velocity(
        self,
        network: SanaTransformer2DModel,
        model_input: torch.Tensor,
        timesteps: torch.Tensor,
        tokens: torch.Tensor,
    ) -> torch.Tensor:
        # Sana embeds timesteps on diffusers' 0-1000 scale.
        return network(
            hidden_states=model_input,
            encoder_hidden_states=tokens,
            timestep=timesteps * 1000,
            return_dict=False,
        )[0]

    def with_fewer_layers(self, network: SanaTransformer2DModel, layers: int) -> SanaTransformer2DModel:
        depth = network.config.num_layers
        if not 1 <= layers <= depth:
            raise ConfigError(f"a {depth}-layer network cannot be cut to {layers} layers (dit.num_layers)")
        kept = np.linspace(0, depth - 1, layers).round().astype(int).tolist()
        shallower = SanaTransformer2DModel.from_config({**network.config, "num_layers": layers})
        renumbered = {
            f"transformer_blocks.{old}.": f"transformer_blocks.{new}." for new, old in enumerate(kept)
        }
        state = {}
        for name, tensor in network.state_dict().items():
            if not name.startswith("transformer_blocks."):
                state[name] = tensor
                continue
            prefix = ".".join(name.split(".")[:2]) + "."
            if prefix in renumbered:
                state[renumbered[prefix] + name[len(prefix) :]] = tensor
        shallower.load_state_dict(state)
        return shallower
