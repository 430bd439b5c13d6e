"""Reward and episode-end prediction from the latents before and after a step and the action taken,
so the learned game is a complete environment for RL.

The reward is a class over the values the recording holds (0, 1, 5, 20 ... for Pacman), so the
learned game pays exactly what the real one does; heads saved before that regress a float."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn


class RewardEndHeads(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(
        self,
        latent_channels: int = 8,
        num_actions: int = 5,
        hidden_channels: int = 32,
        reward_values: list[float] | None = None,
        end_threshold: float = 0.5,  # chosen on held-out transitions after training (train.py)
    ):
        super().__init__()
        self.reward_values = (
            None if reward_values is None else torch.tensor(reward_values, dtype=torch.float32)
        )
        reward_outputs = 1 if reward_values is None else len(reward_values)
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
        self.out = nn.Sequential(
            nn.SiLU(), nn.Linear(2 * h, 2 * h), nn.SiLU(), nn.Linear(2 * h, reward_outputs + 1)
        )

    def forward(self, previous_latents: torch.Tensor, next_latents: torch.Tensor, actions: torch.Tensor):
        """(reward output, end logit (B,)): reward logits (B, R) over ``reward_values``, or (B,) floats."""
        pair = torch.cat([previous_latents, next_latents], dim=1)  # (B, 2C, h, w)
        features = self.features(pair) + self.action_embedding(actions)  # (B, 2h)
        out = self.out(features)  # (B, R + 1)
        reward = out[:, :-1] if self.reward_values is not None else out[:, 0]
        return reward, out[:, -1]

    def reward(self, reward_output: torch.Tensor) -> torch.Tensor:
        """(B,) the predicted reward: the most likely of ``reward_values``, exactly."""
        if self.reward_values is None:
            return reward_output
        return self.reward_values.to(reward_output.device)[reward_output.argmax(dim=-1)]

    def reward_classes(self, rewards: torch.Tensor) -> torch.Tensor:
        """(B,) the index of each reward among ``reward_values`` (the nearest one)."""
        values = self.reward_values.to(rewards.device)
        return (rewards[:, None] - values[None]).abs().argmin(dim=1)


def reward_values_of(rewards) -> list[float]:
    """The distinct rewards a recording holds, sorted: the reward head's classes."""
    return sorted({float(value) for value in torch.as_tensor(rewards).flatten().tolist()} | {0.0})


def end_weight(terminated: torch.Tensor) -> float:
    """Weight of an episode end against a step that goes on: the square root of how much rarer
    ends are, so the head neither learns "never" nor cries wolf (the full ratio over-predicts)."""
    ends = float(terminated.float().sum())
    if ends == 0:
        return 1.0  # nothing to weigh up
    return max(1.0, ((len(terminated) - ends) / ends) ** 0.5)


def best_end_threshold(end_probability: torch.Tensor, terminated: torch.Tensor) -> float:
    """The probability above which to end an episode that scores best (F1) on these transitions."""
    candidates = torch.linspace(0.05, 0.95, 19)
    best, best_f1 = 0.5, -1.0
    for threshold in candidates.tolist():
        predicted = end_probability > threshold
        hits = float((predicted & terminated).sum())
        f1 = 2 * hits / max(float(predicted.sum() + terminated.sum()), 1.0)
        if f1 > best_f1:
            best, best_f1 = threshold, f1
    return float(best)


def heads_loss(
    heads: RewardEndHeads, previous, following, actions, rewards, terminated, end_weight: float = 20.0
):
    reward, end_logit = heads(previous, following, actions)
    core = getattr(heads, "module", heads)  # the heads themselves when wrapped for several processes
    if core.reward_values is None:
        reward_loss = F.smooth_l1_loss(reward, rewards)
    else:
        reward_loss = F.cross_entropy(reward, core.reward_classes(rewards))
    # Episode ends are rare (one per episode): weight them up (``end_weight``) so the head does not learn "never".
    end_loss = F.binary_cross_entropy_with_logits(
        end_logit, terminated.float(), pos_weight=torch.tensor(end_weight, device=end_logit.device)
    )
    return reward_loss + end_loss
