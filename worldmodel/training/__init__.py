"""Training the world model stage by stage (train.py is its command line): the run (run.py), the
stages (stages.py), the loop they share (loop.py), its resumable state (state.py), the run directory's
guards (run_directory.py) and the processes it trains on (processes.py)."""

from worldmodel.training.loop import StageLoop, learning_rate_schedule, state_dir
from worldmodel.training.processes import (
    keep_gradient_layout,
    launch_problem,
    make_accelerator,
    on_every_process,
    record_first_windows,
)
from worldmodel.training.run import RunSetupError, TrainingRun, initial_model
from worldmodel.training.run_directory import RunMismatchError, check_run_config, lock_run
from worldmodel.training.stages import STAGE_TRAINERS
from worldmodel.training.state import TrainingStateError, load_training_state, save_training_state

__all__ = [
    "STAGE_TRAINERS",
    "RunMismatchError",
    "RunSetupError",
    "StageLoop",
    "TrainingRun",
    "TrainingStateError",
    "check_run_config",
    "initial_model",
    "keep_gradient_layout",
    "launch_problem",
    "learning_rate_schedule",
    "load_training_state",
    "lock_run",
    "make_accelerator",
    "on_every_process",
    "record_first_windows",
    "save_training_state",
    "state_dir",
]
