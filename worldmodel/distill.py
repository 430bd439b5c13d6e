"""Distillation of a few-step, guided sampler into one pass of the denoiser.

The teacher (a trained checkpoint under its own sampler: e.g. two Euler steps, each a conditional and
a null-action pass for guidance 3) integrates the flow from a noise to a clean latent. The student, a
copy of the teacher's denoiser, learns to land on that same latent in one Euler step from the same
noise, under the same noisy history and actions: ``noise - v_student(noise, t=1) = teacher(noise)``.
The guided prediction is the target, so the student needs no null-action pass either: one pass a
frame instead of four. The pairs are made fresh each step from the recording's windows, as in
Luhman & Luhman's knowledge distillation of diffusion samplers.
"""

from __future__ import annotations

import numpy as np
import torch

from worldmodel.config import ConfigError, FlowConfig, SamplerConfig
from worldmodel.flow import changed_cell_weights, noise_history
from worldmodel.sampler import Sampler


def one_pass(teacher: SamplerConfig) -> SamplerConfig:
    """The student's sampler: one Euler step with no guidance pass, the teacher's context noise."""
    return teacher.replace(kind="flow", sampling_steps=1, guidance_scale=1.0, timestep_shift=1.0)


def with_random_keys(actions: torch.Tensor, fraction: float, num_actions: int, seed) -> torch.Tensor:
    """``actions`` (B, W) with the last action of the first ``fraction`` of rows drawn uniformly from
    the ``num_actions`` keys, a pure function of ``seed`` (so a resumed run draws the same keys)."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"flow.random_key_fraction must be in [0, 1], got {fraction}")
    count = round(fraction * len(actions))
    keys = np.random.default_rng(seed).integers(0, num_actions, size=count)
    actions = actions.clone()
    actions[:count, -1] = torch.from_numpy(keys).to(actions)
    return actions


def distillation_loss(
    student,
    teacher_denoiser,
    teacher_sampler: Sampler,
    history_latents: torch.Tensor,  # (B, K, C, h, w) clean, from the recording
    actions: torch.Tensor,  # (B, W)
    config: FlowConfig,
) -> torch.Tensor:
    """Mean squared distance between the student's one-pass latent and the teacher's, the cells that
    change between frames weighted up as in training."""
    batch, device = history_latents.shape[0], history_latents.device
    # Context noise at every level training used, so the student repairs its own drift as the teacher does.
    level = torch.rand(batch, device=device) * config.max_context_noise  # (B,)
    history = noise_history(history_latents, level)
    noise = torch.randn_like(history_latents[:, -1])  # (B, C, h, w)
    with torch.no_grad():
        target = teacher_sampler.integrate(teacher_denoiser, noise, history, actions, level)
    keep = torch.zeros(batch, dtype=torch.bool, device=device)
    velocity = student(noise, torch.ones(batch, device=device), history, actions, level, keep)
    error = (noise - velocity.float() - target.float()).pow(2).mean(dim=1)  # (B, h, w)
    weight = changed_cell_weights(target, history_latents[:, -1], config, history_latents[:, -2])
    return (weight * error).sum() / weight.sum()
