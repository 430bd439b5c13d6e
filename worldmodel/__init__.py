"""The world model: a DC-AE autoencoder, a Sana diffusion transformer that predicts the next latent
from past latents and actions, reward/end heads, and the Gymnasium environment built on them."""
