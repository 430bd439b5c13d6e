"""A run of train.py once its arguments are read: the recording and run directory checked, the
processes started, the model it starts from, and each stage trained and saved into the checkpoint."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

import recorder
from worldmodel.backbones import backbone_named
from worldmodel.config import ConfigError, WorldModelConfig
from worldmodel.denoiser import Denoiser, with_more_inputs
from worldmodel.model import WorldModel
from worldmodel.training.loop import state_dir
from worldmodel.training.processes import launch_problem, make_accelerator
from worldmodel.training.run_directory import check_run_config, lock_run, model_differences
from worldmodel.training.stages import STAGE_TRAINERS
from worldmodel.vae import with_new_decoder


class RunSetupError(ValueError):
    """A run that cannot start as asked: too few recorded episodes, or fewer processes than launched."""


class TrainingRun:
    """One run directory trained from one recorded file under one config, stage by stage.

    Made in steps, so that a command can report between them: ``TrainingRun(...)`` checks what can be
    checked before any work, ``start_processes()``, ``load_model()``, then ``train(stage)`` for each
    stage and ``finish()``.
    """

    def __init__(self, config: WorldModelConfig, data_path: Path, run_dir: Path):
        """Raises ConfigError, RunMismatchError, TrajectoryFormatError or RunSetupError, naming the fix."""
        self.config, self.data_path, self.run_dir = config, data_path, run_dir
        self.checkpoint_dir = run_dir / "checkpoint"
        with recorder.load(data_path) as trajectories:
            self.num_episodes, self.action_meanings = len(trajectories), list(trajectories.action_meanings)
            self.episode_seeds = trajectories.seeds.tolist()
            if trajectories.env_id != config.env_id:
                raise ConfigError(
                    f"{data_path} was recorded from {trajectories.env_id} but the config is for {config.env_id}; "
                    f"use the matching config or set env_id={trajectories.env_id}"
                )
        backbone_named(config.dit.backbone)  # unknown: refused before the run directory records it
        lock_run(run_dir)
        check_run_config(run_dir, config)
        if self.num_episodes < 2:
            raise RunSetupError(
                f"{data_path} holds {self.num_episodes} episode(s); record at least 2 "
                "(one is held out for evaluation)"
            )
        self.accelerator = self.model = self.teacher = self.teacher_dir = None
        self.train_ids: list[int] = []
        self.held_out_ids: list[int] = []

    def start_processes(self) -> None:
        """This process's accelerator: bf16 where the config says "auto" and a GPU has it; raises
        RunSetupError when the launcher started fewer processes than were asked for."""
        mixed = self.config.train.mixed_precision
        if mixed == "auto":
            mixed = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
        self.accelerator = make_accelerator(mixed, self.run_dir)
        if problem := launch_problem(self.accelerator):
            raise RunSetupError(problem)

    def processes_line(self) -> str:
        accelerator = self.accelerator
        return (
            f"{accelerator.num_processes} process(es) ({accelerator.distributed_type.value}), "
            f"device {accelerator.device}, mixed precision {accelerator.mixed_precision}"
        )

    def load_model(self, init_from: str | None = None) -> None:
        """The model the run trains: its own checkpoint once it has one, else ``init_from``'s weights
        (CheckpointError or ConfigError where they do not fit), else new weights from the config."""
        config, accelerator = self.config, self.accelerator
        accelerator.init_trackers("logs")
        torch.manual_seed(config.train.seed + accelerator.process_index)
        self.train_ids, self.held_out_ids = recorder.split_episodes(  # a seed never on both sides
            self.num_episodes, config.train.held_out_fraction, config.train.seed, seeds=self.episode_seeds
        )
        if (self.checkpoint_dir / "world_model.json").is_file():
            model = WorldModel.load(self.checkpoint_dir)
        elif init_from:
            model = initial_model(init_from, config, self.action_meanings)
            source = model.settings.config.sampler
            if source != config.sampler and accelerator.is_main_process:
                # e.g. heads trained on a one-pass student: its play-time sampler is not the preset's
                print(
                    f"note: {init_from} plays with sampler {source}; this run's checkpoint records the "
                    f"config's {config.sampler} instead (override sampler.* to keep the source's)"
                )
        else:
            model = WorldModel.from_config(config, self.action_meanings)
        # The run's config, sampler defaults included, is what the checkpoint records.
        model.settings.config = config
        self.model = model
        self.stage_records = model.settings.training.setdefault("stages", {})

    def load_teacher(self, path: str | None) -> None:
        """The checkpoint the distill stage learns from: the run's config must describe its model."""
        if not path:
            raise ConfigError(
                "the distill stage learns from a trained checkpoint: pass it as --init-from, "
                "e.g. --init-from runs/pacman-64/checkpoint"
            )
        teacher = WorldModel.load(path)
        student = copy.deepcopy(teacher.settings.config)  # a student may be shallower and draw for less
        student.dit.num_layers = self.config.dit.num_layers
        student.vae.decoder_block_out_channels = self.config.vae.decoder_block_out_channels
        differences = model_differences(student, self.config)
        if differences:
            raise ConfigError(
                f"the teacher {path} is another model than the config describes (different: "
                f"{', '.join(differences)}); distill with the config the teacher was trained with"
            )
        self.teacher, self.teacher_dir = teacher, Path(path)

    def state_dir(self, name: str) -> Path:
        return state_dir(self.run_dir, name)

    def train(self, name: str) -> None:
        """Trains stage ``name`` from its last save and writes the checkpoint with its record; raises
        TrainingStateError for a saved state that cannot be resumed safely."""
        stage, accelerator = getattr(self.config.train, name), self.accelerator
        accelerator.gradient_accumulation_steps = stage.gradient_accumulation_steps
        steps, seconds = STAGE_TRAINERS[name](self, stage)
        self.stage_records[name] = {
            "steps": steps,
            "seconds": round(seconds, 1),
            "data": str(self.data_path),
            "train_episodes": len(self.train_ids),
            "device": str(accelerator.device),
            "processes": accelerator.num_processes,  # each drew its own batch of stage.batch_size a step
        }
        if self.teacher_dir is not None:
            self.stage_records[name]["teacher"] = str(self.teacher_dir)
        if accelerator.is_main_process:
            self.model.save(self.checkpoint_dir)
            print(
                f"[{name}] done: {steps} steps in {seconds / 60:.1f} min; checkpoint at {self.checkpoint_dir}"
            )

    def finish(self) -> None:
        self.accelerator.end_training()


def initial_model(path: str, config, action_meanings: list[str]) -> WorldModel:
    """A trained checkpoint to continue from under ``config``, its denoiser widened for action planes
    when the config adds them and padded as the config's ``dit.wrap_edges`` says."""
    model = WorldModel.load(path)
    trained = copy.deepcopy(model.settings.config)
    if trained.dit.backbone != config.dit.backbone:
        raise ConfigError(
            f"--init-from {path} holds a '{trained.dit.backbone}' denoiser but the config asks for "
            f"dit.backbone '{config.dit.backbone}'; its weights cannot start another backbone"
        )
    # The differences the trained weights can take: planes the denoiser lacks, added by widening it,
    # the convolutions' padding, which is no weight, and fewer layers (a shallower student).
    trained.dit.action_planes = config.dit.action_planes or model.denoiser.action_planes
    trained.dit.wrap_edges = config.dit.wrap_edges
    trained.dit.num_layers = min(trained.dit.num_layers, config.dit.num_layers)
    trained.vae.decoder_block_out_channels = config.vae.decoder_block_out_channels
    differences = model_differences(trained, config)
    if differences or model.settings.action_meanings != action_meanings:
        raise ConfigError(
            f"--init-from {path} was trained with another model config (different: "
            f"{', '.join(differences) or 'actions'}); only dit.action_planes may be added, "
            "dit.wrap_edges changed, dit.num_layers lowered and vae.decoder_block_out_channels changed"
        )
    # The new run's stage records replace the source's; keep those, and what the source itself was
    # initialised from, as the weights' history.
    source = model.settings.training
    model.settings.training["initialised_from"] = {
        "checkpoint": str(path),
        "stages": dict(source.get("stages", {})),
        **({"initialised_from": source["initialised_from"]} if "initialised_from" in source else {}),
    }
    transformer = model.denoiser.transformer
    if config.dit.action_planes and not model.denoiser.action_planes:
        transformer = with_more_inputs(transformer, model.settings.num_actions)
    if config.dit.num_layers < transformer.config.get("num_layers", config.dit.num_layers):
        transformer = model.denoiser.backbone.with_fewer_layers(transformer, config.dit.num_layers)
    model.denoiser = Denoiser(transformer, model.denoiser.conditioner, config.dit.wrap_edges)
    if config.vae.decoder_channels != tuple(model.vae.config.decoder_block_out_channels):
        model.vae = with_new_decoder(model.vae, config.vae)
    return model
