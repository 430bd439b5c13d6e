"""The world model: a DC-AE autoencoder, a diffusion denoiser (a Sana transformer or a U-Net) that
predicts the next latent from past latents and actions, reward/end heads, and the Gymnasium
environment built on them. ``worldmodel.load(path)`` loads a checkpoint."""

import gymnasium

# Registered by entry-point strings, so importing the package does not load torch models or pygame.
# gymnasium.make applies the step limit as a TimeLimit wrapper, gymnasium.make_vec passes it to the
# batched env as its max_episode_steps keyword; the envs themselves keep no limit unless given one.
if "WorldModel-v0" not in gymnasium.registry:
    gymnasium.register(
        id="WorldModel-v0",
        entry_point="worldmodel.env:WorldModelEnv",
        vector_entry_point="worldmodel.vector_env:WorldModelVectorEnv",
        max_episode_steps=1000,
    )

__all__ = ["WorldModelEnv", "WorldModelVectorEnv", "load"]


def __getattr__(name: str):
    if name == "load":
        from worldmodel.checkpoint import load

        return load
    if name == "WorldModelEnv":
        from worldmodel.env import WorldModelEnv

        return WorldModelEnv
    if name == "WorldModelVectorEnv":
        from worldmodel.vector_env import WorldModelVectorEnv

        return WorldModelVectorEnv
    raise AttributeError(f"module 'worldmodel' has no attribute {name!r}")
