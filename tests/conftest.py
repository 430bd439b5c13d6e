"""Shared test fixtures: a tiny world-model checkpoint built once per session, and a headless SDL."""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
# Subprocesses (the CLIs under test) inherit this: see the note on torch.set_num_threads below.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

import envs  # noqa: E402
from worldmodel.config import load_config  # noqa: E402
from worldmodel.model import WorldModel  # noqa: E402

# The test models are tiny: one thread is as fast, and two threads spin-wait badly when other work
# holds the cores (25x slower measured on a busy 2-core machine).
torch.set_num_threads(1)

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A checkpoint directory of the tiny config (untrained, seeded weights)."""
    torch.manual_seed(0)
    model = WorldModel.from_config(
        # with the action and the held key as planes too, as the default model has them
        load_config(
            os.path.join(REPOSITORY, "configs", "tiny.yaml"),
            ["dit.action_planes=true", "dit.held_action_planes=true"],
        ),
        list(envs.ACTION_MEANINGS),
    )
    # The zero-initialised output layer would make every sample ignore the history and the actions;
    # small random weights make the tests see a model whose frames depend on both.
    torch.nn.init.normal_(model.denoiser.transformer.proj_out.weight, std=0.05)
    # An untrained end head would end episodes at random; this one predicts "not ended" throughout.
    with torch.no_grad():
        model.heads.out[-1].bias[1] = -20.0
    path = tmp_path_factory.mktemp("checkpoint") / "tiny"
    model.save(path)
    return path
