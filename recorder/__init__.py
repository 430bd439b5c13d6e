"""Records trajectories (frames, actions, rewards, ends) of any Gymnasium game into one HDF5 file,
and reads them back for training.

Recording needs no torch: ``WindowDataset``, the torch Dataset of training windows, is imported
from recorder/windows.py the first time it is asked for.
"""

from recorder.format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    RESET_ACTION,
    DamagedEpisodeError,
    TrajectoryFormatError,
    TrajectoryWriteError,
    action_window,
    producing_actions,
)
from recorder.reader import Episode, TrajectoryFile, load, split_episodes
from recorder.writer import TrajectoryWriter

__all__ = [
    "RESET_ACTION",
    "action_window",
    "producing_actions",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "DamagedEpisodeError",
    "Episode",
    "TrajectoryFile",
    "TrajectoryFormatError",
    "TrajectoryWriteError",
    "TrajectoryWriter",
    "WindowDataset",
    "load",
    "split_episodes",
]


def __getattr__(name: str):
    if name == "WindowDataset":
        from recorder.windows import WindowDataset

        return WindowDataset
    raise AttributeError(f"module 'recorder' has no attribute {name!r}")
