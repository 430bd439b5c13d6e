"""Few-step sampling of the next latent with diffusers' flow schedulers and classifier-free guidance.

The sampler never looks inside the network: it only calls ``velocity_fn(noisy, timesteps, drop_actions)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler
from diffusers.utils.torch_utils import randn_tensor

VelocityFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
SCHEDULERS = ("euler", "dpm")


class FlowSampler:
    def __init__(
        self, num_steps: int = 2, guidance_scale: float = 1.0, scheduler: str = "euler", shift: float = 1.0
    ):
        if not 1 <= num_steps <= 50:
            raise ValueError(f"sampling steps must be between 1 and 50, got {num_steps}")
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler '{scheduler}'; choose one of {SCHEDULERS}")
        self.num_steps = num_steps
        self.guidance_scale = float(guidance_scale)
        if scheduler == "euler":
            self.scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
        else:
            self.scheduler = DPMSolverMultistepScheduler(
                use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=shift
            )

    def _set_timesteps(self, device: torch.device) -> None:
        if isinstance(self.scheduler, FlowMatchEulerDiscreteScheduler):
            # Evenly spaced noise levels 1, (n-1)/n, ..., 1/n as in Sana's pipeline; the default would
            # spend the second of two steps at t = 0.001.
            sigmas = np.linspace(1.0, 1.0 / self.num_steps, self.num_steps)
            self.scheduler.set_timesteps(sigmas=sigmas, device=device)
        else:
            self.scheduler.set_timesteps(self.num_steps, device=device)

    @torch.no_grad()
    def sample(
        self,
        velocity_fn: VelocityFn,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Integrates from pure noise (t=1) to a clean latent (t=0); deterministic given ``generator``.

        A list of generators (one per batch item) makes item i independent of the rest of the batch,
        which is how a batched environment reproduces the single one.
        """
        batch = shape[0]
        latents = randn_tensor(
            shape, generator=generator, device=torch.device(device), dtype=dtype
        )  # (B, C, h, w)
        self._set_timesteps(latents.device)
        guided = self.guidance_scale != 1.0
        keep = torch.zeros(batch, dtype=torch.bool, device=latents.device)
        drop = torch.cat([keep, ~keep]) if guided else keep  # conditional and null passes in one batch
        for timestep in self.scheduler.timesteps:
            t = (timestep / 1000).to(dtype).expand(len(drop))  # (B,) or (2B,)
            noisy = torch.cat([latents, latents]) if guided else latents
            velocity = velocity_fn(noisy, t, drop)
            if guided:
                cond, uncond = velocity.chunk(2)
                velocity = uncond + self.guidance_scale * (cond - uncond)
            latents = self.scheduler.step(velocity, timestep, latents, return_dict=False)[0]
        return latents
