"""The world model: a DC-AE autoencoder, a Sana diffusion transformer that predicts the next latent
from past latents and actions, reward/end heads, and the Gymnasium environment built on them."""

import gymnasium

# Registered by entry-point string, so importing the package does not load torch models or pygame.
if "WorldModel-v0" not in gymnasium.registry:
    gymnasium.register(id="WorldModel-v0", entry_point="worldmodel.env:WorldModelEnv")

__all__ = ["WorldModelEnv", "WorldModelVectorEnv"]


def __getattr__(name: str):
    if name == "WorldModelEnv":
        from worldmodel.env import WorldModelEnv

        return WorldModelEnv
    if name == "WorldModelVectorEnv":
        from worldmodel.vector_env import WorldModelVectorEnv

        return WorldModelVectorEnv
    raise AttributeError(f"module 'worldmodel' has no attribute {name!r}")
