"""A mixture of players, drawn per episode and redrawn inside it, so that every kind of key press
is seen in every phase of the game (random players alone die before the maze is half eaten).

Written ``mix:explore=0.4,humanlike=0.3,sticky=0.2,random=0.1``; the weights need not sum to 1.
"""

from __future__ import annotations

import numpy as np

MIX_PREFIX = "mix:"
MEAN_SEGMENT_STEPS = 60  # a player keeps the keys for this many steps on average before a redraw


def parse_mixture(spec: str) -> dict[str, float]:
    """``mix:a=0.5,b=0.5`` -> {"a": 0.5, "b": 0.5}; a ValueError saying what is wrong otherwise."""
    weights: dict[str, float] = {}
    body = spec[len(MIX_PREFIX) :] if spec.startswith(MIX_PREFIX) else spec
    for part in filter(None, body.split(",")):
        name, equals, value = part.partition("=")
        try:
            weight = float(value) if equals else float("nan")
        except ValueError:
            weight = float("nan")
        if not name or not np.isfinite(weight) or weight < 0:
            raise ValueError(f"policy mixture {spec!r}: '{part}' must look like name=weight with weight >= 0")
        if name.startswith(MIX_PREFIX.rstrip(":")):
            raise ValueError(f"policy mixture {spec!r}: a mixture cannot contain a mixture")
        weights[name] = weights.get(name, 0.0) + weight
    if not weights or sum(weights.values()) <= 0:
        raise ValueError(f"policy mixture {spec!r} has no positive weight; e.g. mix:explore=0.5,random=0.5")
    return weights


class MixturePolicy:
    """Plays each segment of an episode with a player drawn by weight; reproducible per episode seed.

    ``current`` names the player of the last step, so a recording can be split by who played.
    """

    def __init__(
        self, players: dict[str, object], weights: dict[str, float], segment_steps: float = MEAN_SEGMENT_STEPS
    ):
        self.players, self.names = players, list(weights)
        probabilities = np.array([weights[name] for name in self.names], dtype=float)
        self.probabilities = probabilities / probabilities.sum()
        self.switch_probability = 1.0 / segment_steps
        self.reset(None)

    def reset(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)
        self._draw()

    def _draw(self) -> None:
        self.current = self.names[int(self._rng.choice(len(self.names), p=self.probabilities))]
        player = self.players[self.current]
        if hasattr(player, "reset"):
            player.reset(int(self._rng.integers(2**31)))

    def __call__(self, observation) -> int:
        if self._rng.random() < self.switch_probability:
            self._draw()
        return self.players[self.current](observation)
