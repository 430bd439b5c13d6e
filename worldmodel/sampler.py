"""Samplers of the next latent: each owns its settings (a ``SamplerConfig``), the noise it puts on the
history and its guidance batching, and calls the denoiser ``denoiser(noisy, t, history, actions,
context_noise, drop_actions)``. The envs, play.py and the evaluation hand a sampler around; a new
sampler is one class here and one line in ``SAMPLERS`` (settings it adds are ``SamplerConfig`` fields).
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler
from diffusers.utils.torch_utils import randn_tensor

from worldmodel.config import SamplerConfig
from worldmodel.flow import noise_history

SCHEDULERS = ("euler", "dpm")


class Sampler:
    """What every sampler has: its settings, ``replace`` for a variant, ``sample`` for the next latent."""

    settings: SamplerConfig

    def replace(self, **changes) -> Sampler:
        """The sampler with these settings changed (None keeps a setting); ``kind`` may change too."""
        return make_sampler(self.settings.replace(**changes))

    def sample(self, denoiser, history_latents, actions, generator=None) -> torch.Tensor:
        """The next latent (B, C, h, w) from the clean history and the action window."""
        raise NotImplementedError

    def integrate(self, denoiser, noise, history, actions, level) -> torch.Tensor:
        """The clean latent reached from ``noise`` given the noised history: what distillation teaches."""
        raise NotImplementedError


class FlowSampler(Sampler):
    """Few-step integration of the rectified flow from noise (t=1) to a clean latent (t=0), with
    classifier-free guidance over the actions (the conditional and null-action passes in one batch)."""

    def __init__(self, settings: SamplerConfig):
        if not 1 <= settings.sampling_steps <= 50:
            raise ValueError(f"sampling steps must be between 1 and 50, got {settings.sampling_steps}")
        if settings.scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler '{settings.scheduler}'; choose one of {SCHEDULERS}")
        if settings.context_noise < 0 or settings.guidance_scale < 0:
            raise ValueError(
                f"context noise and guidance scale must not be negative, got {settings.context_noise} "
                f"and {settings.guidance_scale}"
            )
        self.settings = settings
        self.sigmas = euler_sigmas(settings.sampling_steps, settings.timestep_shift)

    def _scheduler(self, device: torch.device):
        """A DPM-Solver scheduler set to this sampler's steps. Multistep schedulers keep the past
        velocities as they go, so each call gets its own: one cached sampler then serves envs stepping in
        several threads."""
        scheduler = DPMSolverMultistepScheduler(
            use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=self.settings.timestep_shift
        )
        scheduler.set_timesteps(self.settings.sampling_steps, device=device)
        return scheduler

    @torch.no_grad()
    def sample(
        self,
        denoiser,
        history_latents: torch.Tensor,  # (B, K, C, h, w) clean history
        actions: torch.Tensor,  # (B, W) the action window; the last is the action being taken now
        generator: torch.Generator | list[torch.Generator] | None = None,
    ) -> torch.Tensor:
        """The next latent (B, C, h, w); deterministic given ``generator``.

        A list of generators (one per batch item) makes item i independent of the rest of the batch,
        which is how a batched environment reproduces the single one.
        """
        batch = history_latents.shape[0]
        level = torch.full((batch,), float(self.settings.context_noise), device=history_latents.device)
        history = noise_history(history_latents, level, generator=generator)
        noise = randn_tensor(
            (batch, *history_latents.shape[2:]),
            generator=generator,
            device=history.device,
            dtype=history.dtype,
        )  # (B, C, h, w)
        return self.integrate(denoiser, noise, history, actions, level)

    def integrate(
        self,
        denoiser,
        noise: torch.Tensor,  # (B, C, h, w) where the flow starts (t = 1)
        history: torch.Tensor,  # (B, K, C, h, w) with its context noise already on
        actions: torch.Tensor,  # (B, W)
        level: torch.Tensor,  # (B,) that context noise's level
    ) -> torch.Tensor:
        """The clean latent the flow reaches from ``noise``: what ``sample`` does once its noise is drawn."""
        batch, latents = noise.shape[0], noise
        guided = self.settings.guidance_scale != 1.0
        keep = torch.zeros(batch, dtype=torch.bool, device=latents.device)
        if guided:  # the conditional and the null-action pass in one batch
            drop = torch.cat([keep, ~keep])
            history, actions, level = history.repeat(2, 1, 1, 1, 1), actions.repeat(2, 1), level.repeat(2)
        else:
            drop = keep

        def guided_velocity(latents, t: float):
            noisy = torch.cat([latents, latents]) if guided else latents
            velocity = denoiser(noisy, latents.new_full((len(drop),), t), history, actions, level, drop)
            if not guided:
                return velocity
            cond, uncond = velocity.chunk(2)
            return uncond + self.settings.guidance_scale * (cond - uncond)

        if self.settings.scheduler == "euler":
            # Plain Euler steps between the fixed noise levels: no scheduler object on the hot path.
            for sigma, sigma_next in itertools.pairwise(self.sigmas):
                velocity = guided_velocity(latents, sigma)
                latents = (latents.float() + (sigma_next - sigma) * velocity.float()).to(velocity.dtype)
            return latents
        scheduler = self._scheduler(latents.device)
        for timestep in scheduler.timesteps:
            velocity = guided_velocity(latents, float(timestep) / 1000)
            latents = scheduler.step(velocity, timestep, latents, return_dict=False)[0]
        return latents


def euler_sigmas(steps: int, shift: float) -> tuple[float, ...]:
    """The noise levels of ``steps`` Euler steps and the final 0, as diffusers' FlowMatchEulerDiscreteScheduler
    sets them: evenly spaced 1, (n-1)/n, ..., 1/n as in Sana's pipeline (the scheduler's default would
    spend the second of two steps at t = 0.001), then shifted toward noise by ``shift``."""
    even = np.linspace(1.0, 1.0 / steps, steps)
    shifted = shift * even / (1 + (shift - 1) * even)
    return (*(float(s) for s in shifted), 0.0)


SAMPLERS: dict[str, type[Sampler]] = {"flow": FlowSampler}


@functools.lru_cache(maxsize=64)
def make_sampler(settings: SamplerConfig) -> Sampler:
    """The sampler these settings describe; built once per setting, as a game loop asks every frame."""
    if settings.kind not in SAMPLERS:
        raise ValueError(f"unknown sampler kind '{settings.kind}'; choose one of {sorted(SAMPLERS)}")
    return SAMPLERS[settings.kind](settings)
