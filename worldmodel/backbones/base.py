"""What the denoiser asks of the network inside it. The denoiser (worldmodel/denoiser.py) assembles
the input planes (noisy next latent, history latents, action planes) and the action tokens; a backbone
builds the network that turns them into a velocity, and knows how to call it, widen its input and
pad its convolutions."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from diffusers import ModelMixin
from torch import nn

from worldmodel.config import ConfigError, DiTConfig


class Backbone(ABC):
    """One kind of denoiser network. The network is a diffusers ``ModelMixin`` whose config holds
    ``in_channels`` and ``out_channels``: a checkpoint saves it as its ``dit`` part with
    ``save_pretrained``, and its ``_class_name`` there says which backbone wrote it."""

    network_class: type[ModelMixin]
    # The state-dict name of the weight that reads the input channels (its dimension 1).
    input_weight: str

    @abstractmethod
    def build(
        self, config: DiTConfig, in_channels: int, out_channels: int, token_dim: int, latent_size: int
    ) -> ModelMixin:
        """A fresh network: ``in_channels`` input planes of ``latent_size`` squared to ``out_channels``
        velocity planes, reading tokens ``token_dim`` wide. Its output layer starts at zero (DiT's
        zero-init: the untrained model predicts zero velocity, a calm start)."""

    @abstractmethod
    def velocity(
        self,
        network: ModelMixin,
        model_input: torch.Tensor,  # (B, in_channels, h, w)
        timesteps: torch.Tensor,  # (B,) flow time in [0, 1]; 1 is pure noise
        tokens: torch.Tensor,  # (B, N, token_dim)
    ) -> torch.Tensor:
        """(B, out_channels, h, w)."""

    def with_more_inputs(self, network: ModelMixin, extra: int) -> ModelMixin:
        """The same network taking ``extra`` more input channels, weighted zero so it computes what it did.

        How a trained denoiser gains action planes: training then learns to use them.
        """
        config = {**network.config, "in_channels": network.config.in_channels + extra}
        wider = type(network).from_config(config)
        state = network.state_dict()
        weight = state[self.input_weight]  # (D, in_channels, ...)
        state[self.input_weight] = torch.cat(
            [weight, weight.new_zeros(weight.shape[0], extra, *weight.shape[2:])], dim=1
        )
        wider.load_state_dict(state)
        return wider

    def set_wrap_edges(self, network: ModelMixin, wrap: bool) -> None:
        """Pads every spatial convolution of ``network`` circularly (``wrap``) or with zeros.

        A padding mode is not a weight, so the same weights serve either; it is not in diffusers'
        config either, so the checkpoint's ``dit.wrap_edges`` says which one a model was trained with.
        """
        for module in network.modules():
            if isinstance(module, nn.Conv2d) and any(module.padding):
                module.padding_mode = "circular" if wrap else "zeros"

    def with_fewer_layers(self, network: ModelMixin, layers: int) -> ModelMixin:
        """A network of ``layers`` of ``network``'s blocks, evenly spaced, first and last kept: where a
        shallower student starts when it is distilled from a deeper teacher."""
        raise ConfigError(f"a {type(network).__name__} cannot be cut to fewer layers (dit.num_layers)")
