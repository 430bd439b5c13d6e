"""Reward and end heads on real transitions: both latents come from encoded recorded frames, so this
scores the heads alone, not the frames the model generates."""

from __future__ import annotations

import numpy as np
import torch

from worldmodel.evaluate.episodes import HeldOutEpisode
from worldmodel.metrics import precision_recall

PELLET_REWARD = 0.5  # a reward above this counts as a pellet eaten (pellets give +1)


@torch.no_grad()
def reward_end_accuracy(model, episodes: list[HeldOutEpisode]) -> dict[str, float]:
    """The model's heads on every transition of ``episodes``, ends decided as the env decides them."""
    return reward_end_scores(
        model.heads,
        torch.cat([e.latents[:-1] for e in episodes]).to(model.device),  # (N, C, h, w)
        torch.cat([e.latents[1:] for e in episodes]).to(model.device),
        torch.from_numpy(np.concatenate([e.actions for e in episodes])).to(model.device),  # (N,)
        np.concatenate([e.rewards for e in episodes]),
        np.concatenate([e.terminated for e in episodes]),
        model.end_threshold,
    )


@torch.no_grad()
def reward_end_scores(
    heads, previous, following, actions, real_reward: np.ndarray, real_end: np.ndarray, end_threshold: float
) -> dict[str, float]:
    """Precision and recall of pellets (reward) and ends, and how exactly rewards are paid."""
    reward_output, end_logit = heads(previous, following, actions)
    reward = heads.reward(reward_output).float().cpu().numpy()
    end_probability = torch.sigmoid(end_logit).float().cpu().numpy()
    real_reward, real_end = np.asarray(real_reward), np.asarray(real_end, dtype=bool)
    predicted_reward = reward > PELLET_REWARD
    predicted_end = end_probability > end_threshold
    reward_precision, reward_recall = precision_recall(predicted_reward, real_reward > PELLET_REWARD)
    end_precision, end_recall = precision_recall(predicted_end, real_end)
    return {
        "reward_precision": reward_precision,
        "reward_recall": reward_recall,
        "end_precision": end_precision,
        "end_recall": end_recall,
        "transitions": len(actions),
        "reward_events": int((real_reward > PELLET_REWARD).sum()),
        "reward_predicted": int(predicted_reward.sum()),
        "end_events": int(real_end.sum()),
        "end_predicted": int(predicted_end.sum()),
        "reward_mae": float(np.abs(reward - real_reward).mean()),
        # the share of steps paid exactly what the real game paid (0, 1, 5, 20, ...)
        "reward_exact": float((reward == real_reward).mean()),
        "end_threshold": end_threshold,
    }
