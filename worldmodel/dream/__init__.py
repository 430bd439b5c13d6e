"""Train an agent in the learned game and score it in the real one: ``python -m worldmodel.dream``."""
