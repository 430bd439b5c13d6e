"""The frame autoencoder: a small ``diffusers.AutoencoderDC`` (DC-AE) trained from scratch on
recorded frames, plus the conversions between uint8 frames and scaled latents."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderDC

from worldmodel.config import VAEConfig


def build_vae(config: VAEConfig) -> AutoencoderDC:
    levels = len(config.block_out_channels)
    for name, values in (
        ("layers_per_block", config.layers_per_block),
        ("decoder_block_out_channels", config.decoder_channels),
    ):
        if len(values) != levels:
            raise ValueError(
                f"vae.{name} has {len(values)} entries but vae.block_out_channels has {levels}; "
                "give one per level"
            )
    return AutoencoderDC(
        in_channels=3,
        latent_channels=config.latent_channels,
        attention_head_dim=16,
        # Plain ResBlocks: at 64x64 the linear-attention blocks of the large DC-AE cost more than they give.
        encoder_block_types="ResBlock",
        decoder_block_types="ResBlock",
        encoder_block_out_channels=tuple(config.block_out_channels),
        decoder_block_out_channels=config.decoder_channels,
        encoder_layers_per_block=tuple(config.layers_per_block),
        decoder_layers_per_block=tuple(config.layers_per_block),
        encoder_qkv_multiscales=((),) * levels,
        decoder_qkv_multiscales=((),) * levels,
        decoder_norm_types="rms_norm",
        decoder_act_fns="silu",
    )


def spatial_compression(config: VAEConfig) -> int:
    return 2 ** (len(config.block_out_channels) - 1)


def frames_to_tensor(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames (..., H, W, 3) -> float pixels (..., 3, H, W) in [-1, 1]."""
    pixels = frames.float().div(127.5).sub(1.0)
    return pixels.movedim(-1, -3)


def tensor_to_frames(pixels: torch.Tensor) -> torch.Tensor:
    """float pixels (..., 3, H, W) in [-1, 1] -> uint8 frames (..., H, W, 3)."""
    frames = pixels.movedim(-3, -1).add(1.0).mul(127.5).round().clamp(0, 255)
    return frames.to(torch.uint8)


def reconstruction_loss(
    reconstruction: torch.Tensor, pixels: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Squared plus absolute error, averaged over pixels weighted by ``weight`` (B, 1, H, W) if given.
    L1 keeps the one-pixel pellets sharp; MSE is what PSNR scores."""
    if weight is None:
        return F.mse_loss(reconstruction, pixels) + F.l1_loss(reconstruction, pixels)
    error = reconstruction - pixels
    weight = weight.expand_as(error)
    return (weight * (error.pow(2) + error.abs())).sum() / weight.sum()


@torch.no_grad()
def encode_frames(vae: AutoencoderDC, frames: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """uint8 frames (N, H, W, 3) -> scaled latents (N, C, h, w), the DiT's working space."""
    device = next(vae.parameters()).device
    latents = []
    for start in range(0, len(frames), batch_size):
        pixels = frames_to_tensor(frames[start : start + batch_size].to(device))
        latents.append(vae.encode(pixels).latent * vae.config.scaling_factor)
    return torch.cat(latents)


@torch.no_grad()
def decode_latents(vae: AutoencoderDC, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents (N, C, h, w) -> uint8 frames (N, H, W, 3)."""
    pixels = vae.decode(latents / vae.config.scaling_factor).sample
    return tensor_to_frames(pixels.float())


@torch.no_grad()
def measure_scaling_factor(vae: AutoencoderDC, frames: torch.Tensor) -> float:
    """1 / std of the raw latents, so the diffusion model sees unit-variance latents."""
    device = next(vae.parameters()).device
    raw = vae.encode(frames_to_tensor(frames.to(device))).latent
    return float(1.0 / raw.float().std().clamp_min(1e-6))


def with_new_decoder(vae: AutoencoderDC, config: VAEConfig) -> AutoencoderDC:
    """An autoencoder of ``config`` keeping ``vae``'s encoder and latent scale, its decoder new: where
    a slimmer decoder starts before it learns from ``vae``'s."""
    fresh = build_vae(config)
    fresh.encoder.load_state_dict(vae.encoder.state_dict())
    fresh.register_to_config(scaling_factor=vae.config.scaling_factor)
    return fresh
