"""Denoiser backbones, chosen by the config's ``dit.backbone``: the network inside the denoiser.

To add one: a module here with a ``Backbone`` subclass (see base.py: ``build``, ``velocity``, the
network's diffusers class and the name of its input weight), and a line in ``BACKBONES``. Its name
then works in a YAML config (``dit.backbone: NAME``) and in checkpoints."""

from __future__ import annotations

from worldmodel.backbones.base import Backbone
from worldmodel.backbones.sana import SanaBackbone
from worldmodel.backbones.unet import UNetBackbone
from worldmodel.config import ConfigError

BACKBONES: dict[str, Backbone] = {
    "sana": SanaBackbone(),
    "unet": UNetBackbone(),
}


def backbone_named(name: str) -> Backbone:
    """The backbone a config's ``dit.backbone`` names; a ConfigError listing the known ones otherwise."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown dit.backbone {name!r}; the backbones are {', '.join(BACKBONES)}")
    return BACKBONES[name]


def backbone_name(network_class_name: str) -> str | None:
    """The name of the backbone whose network is of this diffusers class (a checkpoint's ``_class_name``)."""
    return next(
        (name for name, b in BACKBONES.items() if b.network_class.__name__ == network_class_name), None
    )


def backbone_of(network) -> Backbone:
    """The backbone that builds networks of ``network``'s class."""
    name = backbone_name(type(network).__name__)
    if name is None:
        raise TypeError(f"no backbone builds a {type(network).__name__}; see worldmodel/backbones/")
    return BACKBONES[name]
