"""Real games the world model learns from: our own Pacman and adapters for other Gymnasium games.

Importing this package registers ``Pacman-v0`` with Gymnasium.
"""
