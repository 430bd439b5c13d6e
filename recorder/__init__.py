"""Records trajectories (frames, actions, rewards, ends) of any Gymnasium game into one HDF5 file,
and reads them back for training."""

from recorder.format import FORMAT_NAME, FORMAT_VERSION, TrajectoryFormatError, TrajectoryWriter
from recorder.reader import (
    RESET_ACTION,
    Episode,
    TrajectoryFile,
    WindowDataset,
    action_window,
    load,
    producing_actions,
    split_episodes,
)

__all__ = [
    "RESET_ACTION",
    "action_window",
    "producing_actions",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Episode",
    "TrajectoryFile",
    "TrajectoryFormatError",
    "TrajectoryWriter",
    "WindowDataset",
    "load",
    "split_episodes",
]
