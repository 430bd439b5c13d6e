"""Train an agent in the learned game and score it in the real one: ``python -m worldmodel.dream``."""


class AgentFileError(ValueError):
    """A trained agent's directory that is missing, damaged or made for frames of another size."""
