"""Reward and episode-end prediction from the latents before and after a step and the action taken,
so the learned game is a complete environment for RL."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn


class RewardEndHeads(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, latent_channels: int = 8, num_actions: int = 5, hidden_channels: int = 32):
        super().__init__()
        h = hidden_channels
        self.features = nn.Sequential(
            nn.Conv2d(2 * latent_channels, h, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(h, 2 * h, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(2 * h, 2 * h, 3, padding=1),
            # Max, not mean: a pellet eaten is one small spot in the frame.
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.action_embedding = nn.Embedding(num_actions, 2 * h)
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(2 * h, 2 * h), nn.SiLU(), nn.Linear(2 * h, 2))

    def forward(self, previous_latents: torch.Tensor, next_latents: torch.Tensor, actions: torch.Tensor):
        pair = torch.cat([previous_latents, next_latents], dim=1)  # (B, 2C, h, w)
        features = self.features(pair) + self.action_embedding(actions)  # (B, 2h)
        reward, end_logit = self.out(features).unbind(-1)  # (B,), (B,)
        return reward, end_logit


def heads_loss(
    heads: RewardEndHeads, previous, following, actions, rewards, terminated, end_weight: float = 20.0
):
    reward, end_logit = heads(previous, following, actions)
    reward_loss = F.smooth_l1_loss(reward, rewards)
    # Episode ends are rare (one per episode): weight them up so the head does not learn "never".
    end_loss = F.binary_cross_entropy_with_logits(
        end_logit, terminated.float(), pos_weight=torch.tensor(end_weight, device=end_logit.device)
    )
    return reward_loss + end_loss
