"""The Sana backbone: ``diffusers.SanaTransformer2DModel`` (linear attention, Mix-FFN, AdaLN-single,
no position embedding) in a small config. Its patch embedding is the history conv_in; the action
tokens are its caption, read through cross-attention."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import SanaTransformer2DModel
from diffusers.models.transformers.sana_transformer import GLUMBConv
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

    def set_wrap_edges(self, network: SanaTransformer2DModel, wrap: bool) -> None:
        super().set_wrap_edges(network, wrap)
        for block in network.transformer_blocks:
            if wrap and isinstance(block.ff, GLUMBConv):
                block.ff = CircularMixFFN(block.ff)
            elif not wrap and isinstance(block.ff, CircularMixFFN):
                block.ff = block.ff.unwrapped()

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


class CircularMixFFN(nn.Module):
    """Sana's Mix-FFN (1x1 conv, SiLU, depthwise 3x3 conv, gated SiLU, 1x1 conv) on a torus, computed on
    the tokens' own channels-last layout: the same weights and result as ``GLUMBConv`` whose depthwise
    convolution pads circularly, about 3 times as fast on a CPU.

    Torch's circular padding copies the wide (2 x hidden) planes into a channels-first tensor and
    then runs the depthwise convolution there, its slow layout: together 80% of a batch-64 step. Here
    the 1x1 convolutions are matrix products on the tokens and the wrap is a copy into a wider
    channels-last frame. The parameters keep ``GLUMBConv``'s names, so checkpoints load either way.
    """

    def __init__(self, ff: GLUMBConv):
        super().__init__()
        if ff.residual_connection or ff.norm_type is not None:
            raise ValueError("CircularMixFFN computes Sana blocks' Mix-FFN: no residual, no norm")
        self.conv_inverted, self.conv_depth, self.conv_point = ff.conv_inverted, ff.conv_depth, ff.conv_point

    def forward(self, planes: torch.Tensor) -> torch.Tensor:  # (B, C, h, w), as a Sana block passes it
        x = planes.permute(0, 2, 3, 1)  # (B, h, w, C): the tokens' own layout, no copy
        x = F.linear(x, self.conv_inverted.weight[:, :, 0, 0], self.conv_inverted.bias)
        x = silu_wrap_padded(x)  # (B, h+2, w+2, 2H)
        x = F.conv2d(
            x.permute(0, 3, 1, 2), self.conv_depth.weight, self.conv_depth.bias, groups=self.conv_depth.groups
        ).permute(0, 2, 3, 1)  # (B, h, w, 2H)
        x, gate = x.chunk(2, dim=-1)
        x = F.linear(x * F.silu(gate), self.conv_point.weight[:, :, 0, 0])  # (B, h, w, C)
        return x.permute(0, 3, 1, 2)  # (B, C, h, w)

    def unwrapped(self) -> GLUMBConv:
        """The same weights as diffusers' module, which pads as its depthwise convolution says."""
        ff = GLUMBConv(1, 1, 1, norm_type=None, residual_connection=False)
        ff.conv_inverted, ff.conv_depth, ff.conv_point = self.conv_inverted, self.conv_depth, self.conv_point
        return ff


def silu_wrap_padded(x: torch.Tensor) -> torch.Tensor:
    """(B, h+2, w+2, C): SiLU of ``x`` (B, h, w, C) with one more cell on every side from the far side."""
    if torch.onnx.is_in_onnx_export():  # shapes stay symbolic through concatenations
        x = F.silu(x)
        x = torch.cat([x[:, -1:], x, x[:, :1]], dim=1)
        return torch.cat([x[:, :, -1:], x, x[:, :, :1]], dim=2)
    # One write into the wider frame, then its edges: faster than concatenations in torch (measured).
    batch, height, width, channels = x.shape
    padded = x.new_empty(batch, height + 2, width + 2, channels)
    if torch.is_grad_enabled():
        padded[:, 1:-1, 1:-1] = F.silu(x)
    else:  # the SiLU writes straight into the frame (no autograd for out=): 20% off this module
        torch.ops.aten.silu.out(x, out=padded[:, 1:-1, 1:-1])
    padded[:, 0, 1:-1], padded[:, -1, 1:-1] = padded[:, -2, 1:-1], padded[:, 1, 1:-1]
    padded[:, :, 0], padded[:, :, -1] = padded[:, :, -2], padded[:, :, 1]
    return padded
