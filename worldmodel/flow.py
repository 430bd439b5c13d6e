"""Rectified-flow training objective with context-noise augmentation: the loss the denoiser minimises."""

from __future__ import annotations

import torch
from diffusers.utils.torch_utils import randn_tensor

from worldmodel.config import FlowConfig
from worldmodel.denoiser import Denoiser


def shift_timesteps(t: torch.Tensor, shift: float) -> torch.Tensor:
    """SD3-style shift: >1 spends more training on noisy timesteps, where few-step sampling starts."""
    return shift * t / (1 + (shift - 1) * t)


def noise_history(history_latents: torch.Tensor, level: torch.Tensor, generator=None) -> torch.Tensor:
    """GameNGen's context noise: corrupting the past teaches the model to repair its own drift."""
    noise = randn_tensor(
        history_latents.shape, generator=generator, device=history_latents.device, dtype=history_latents.dtype
    )
    return history_latents + level.view(-1, 1, 1, 1, 1) * noise


def flow_matching_loss(
    denoiser: Denoiser,
    target_latents: torch.Tensor,  # (B, C, h, w) the next frame's latent, x0
    history_latents: torch.Tensor,  # (B, K, C, h, w)
    actions: torch.Tensor,  # (B, W) the action window; the last produces the target
    config: FlowConfig,
) -> torch.Tensor:
    batch, device = target_latents.shape[0], target_latents.device
    t = shift_timesteps(torch.rand(batch, device=device), config.timestep_shift)  # (B,)
    eps = torch.randn_like(target_latents)
    t_ = t.view(-1, 1, 1, 1)
    noisy = (1 - t_) * target_latents + t_ * eps  # (B, C, h, w)
    level = torch.rand(batch, device=device) * config.max_context_noise  # (B,)
    history = noise_history(history_latents, level)
    drop = torch.rand(batch, device=device) < config.p_uncond  # (B,)
    velocity = denoiser(noisy, t, history, actions, level, drop)
    error = (velocity.float() - (eps - target_latents).float()).pow(2).mean(dim=1)  # (B, h, w)
    weight = changed_cell_weights(target_latents, history_latents[:, -1], config)
    return (weight * error).sum() / weight.sum()


def changed_cell_weights(
    target_latents: torch.Tensor, last_latents: torch.Tensor, config: FlowConfig
) -> torch.Tensor:
    """(B, h, w) loss weights: ``changed_cell_weight`` where the frame changes, 1 elsewhere."""
    change = (target_latents - last_latents).abs().amax(dim=1).float()  # (B, h, w)
    changed = change > config.changed_cell_threshold
    return 1.0 + (config.changed_cell_weight - 1.0) * changed.float()
