"""Trains the world model from a recorded HDF5 file, stage by stage: the autoencoder (vae), the
denoiser (dit) and the reward/end heads (heads), or all three in order. Killed at any point, it resumes.

    python train.py --config configs/pacman-64.yaml --data data/pacman.h5 --out runs/pacman-64
    accelerate launch --multi_gpu --num_processes 2 train.py ...   # two processes: GPUs, or CPUs with no GPU
"""

from __future__ import annotations

import argparse
import sys

STAGES = ("vae", "dit", "heads")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/pacman-64.yaml", help="YAML preset in configs/")
    parser.add_argument("--data", required=True, help="recorded HDF5 file (python -m recorder ...)")
    parser.add_argument("--out", required=True, help="run directory: state, logs, samples, checkpoint/")
    parser.add_argument("--stage", default="all", choices=(*STAGES, "all"), help="which stage to train")
    parser.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        help="start a new run from this checkpoint's weights (same model config, except that it may add "
        "dit.action_planes and change dit.wrap_edges); ignored once the run has its own checkpoint",
    )
    parser.add_argument("overrides", nargs="*", help="config overrides such as train.dit.steps=200")
    return parser.parse_args(argv)


if __name__ == "__main__":
    parse_args()  # --help and argument errors answer at once, before torch and diffusers load (seconds)

import csv
import time
from pathlib import Path

import numpy as np
import torch
from diffusers.training_utils import EMAModel
from tqdm import tqdm

import recorder
from worldmodel.config import ConfigError, load_config
from worldmodel.data import build_latent_cache
from worldmodel.flow import flow_matching_loss
from worldmodel.heads import RewardEndHeads, best_end_threshold, end_weight, heads_loss, reward_values_of
from worldmodel.model import CheckpointError, SamplerDefaults, WorldModel
from worldmodel.samples import dit_samples, heads_metrics, vae_samples
from worldmodel.training import (
    RunMismatchError,
    check_run_config,
    initial_model,
    keep_gradient_layout,
    launch_problem,
    learning_rate_schedule,
    lock_run,
    make_accelerator,
    on_every_process,
    record_first_windows,
)
from worldmodel.training_state import TrainingStateError, load_training_state, save_training_state
from worldmodel.vae import frames_to_tensor, measure_scaling_factor, reconstruction_loss


def random_rows(rows: np.ndarray, batch_size: int, batch_seed: int) -> np.ndarray:
    """A random batch of rows, a pure function of the seed so a resumed run draws the same data."""
    rng = np.random.default_rng(batch_seed)
    return rows[rng.integers(0, len(rows), size=batch_size)]


def batch_seed(seed: int, step: int, accelerator) -> int:
    """Distinct per step and per process (so each process trains on its own windows), identical across
    a resume; on one process, seed * 1_000_003 + step."""
    return seed * 1_000_003 + step * accelerator.num_processes + accelerator.process_index


def train_stage(name, module, batch_loss, evaluate, stage, run_dir, accelerator, seed):
    """The loop shared by every stage: AdamW with warmup and an optional cooldown, EMA, accumulation,
    periodic saves and evaluations. ``batch_loss(module, draw)`` returns the loss and the (B, 2)
    (episode, frame) windows it was computed on. On N processes each draws its own batch and
    accelerate's DDP averages the gradients, so a step sees N batches."""
    optimizer = torch.optim.AdamW(
        module.parameters(), lr=stage.learning_rate, weight_decay=stage.weight_decay
    )
    schedule = learning_rate_schedule(optimizer, stage)
    if accelerator.num_processes > 1:
        keep_gradient_layout(module)
    module, optimizer, schedule = accelerator.prepare(module, optimizer, schedule)
    # Kept by save/load_training_state as safetensors, not registered with accelerate, whose resume
    # would unpickle it in full.
    ema = EMAModel(accelerator.unwrap_model(module).parameters(), decay=stage.ema_decay)
    state_dir = run_dir / "state" / name
    progress = load_training_state(accelerator, state_dir, ema) or {"step": 0, "elapsed": 0.0}
    if progress["step"] and accelerator.is_main_process:
        print(f"[{name}] resuming from step {progress['step']} ({state_dir})")
    ema.to(accelerator.device)
    step, started = progress["step"], time.monotonic() - progress["elapsed"]
    log_path = run_dir / f"{name}_eval.csv"

    def elapsed() -> float:
        return time.monotonic() - started

    def out_of_time() -> bool:
        # The main process's clock decides for all: a process that stopped alone would leave the
        # others waiting forever in DDP's gradient all-reduce.
        return bool(stage.max_minutes) and on_every_process(accelerator, elapsed() > stage.max_minutes * 60)

    def save() -> None:
        save_training_state(accelerator, state_dir, {"step": step, "elapsed": elapsed()}, ema)

    def run_evaluation() -> None:
        ema.store(module.parameters())
        ema.copy_to(module.parameters())
        module.eval()
        metrics = evaluate(accelerator.unwrap_model(module), step) if accelerator.is_main_process else {}
        module.train()
        ema.restore(module.parameters())
        if metrics:
            accelerator.log({f"{name}/{key}": value for key, value in metrics.items()}, step=step)
            new_file = not log_path.exists()
            with log_path.open("a", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=["step", "seconds", *metrics])
                if new_file:
                    writer.writeheader()
                writer.writerow({"step": step, "seconds": round(elapsed(), 1), **metrics})
            bar.write(f"[{name}] step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))

    bar = tqdm(total=stage.steps, initial=step, desc=f"train {name}", disable=not accelerator.is_main_process)
    module.train()
    first_step = True
    while step < stage.steps and not out_of_time():
        with accelerator.accumulate(module):
            loss, windows = batch_loss(module, batch_seed(seed, step, accelerator))
            if first_step and accelerator.num_processes > 1:
                record_first_windows(accelerator, run_dir / f"{name}_first_windows.json", windows)
            first_step = False
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(module.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
        if not accelerator.sync_gradients:
            continue
        ema.step(module.parameters())
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        accelerator.log({f"{name}/loss": loss.item(), f"{name}/lr": schedule.get_last_lr()[0]}, step=step)
        if step % stage.save_every == 0:
            save()
        if step % stage.eval_every == 0:
            run_evaluation()
    bar.close()
    save()
    if step % stage.eval_every != 0:
        run_evaluation()
    ema.copy_to(module.parameters())  # what is shipped is the EMA of the weights
    trained = accelerator.unwrap_model(module)
    forget_stage(accelerator)
    return trained, step, elapsed()


def forget_stage(accelerator) -> None:
    """Unregisters a finished stage's model, optimiser and schedule from the accelerator.

    ``save_state`` writes everything registered, in order; without this, the next stage's state
    would hold the previous stage's model first, and a later ``--stage dit`` resume would load
    the autoencoder's weights into the denoiser.
    """
    accelerator.free_memory()


def run_vae_stage(model, config, stage, data_path, run_dir, train_ids, held_out_ids, accelerator):
    frames = recorder.WindowDataset(data_path, window=1, episodes=train_ids)
    loader = torch.utils.data.DataLoader(
        frames,
        batch_size=stage.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=config.train.num_workers,
    )
    loader = accelerator.prepare(loader)
    batches = iter(())

    def vae_loss(vae, _draw):
        nonlocal batches
        batch = next(batches, None)
        if batch is None:  # next epoch
            batches = iter(loader)
            batch = next(batches)
        pixels = frames_to_tensor(batch["frames"][:, 0])  # (B, 3, H, W)
        windows = torch.stack([batch["episode"], batch["frame_index"]], dim=1).cpu().numpy()
        return reconstruction_loss(vae(pixels).sample, pixels), windows

    evaluate = vae_samples(data_path, held_out_ids, run_dir)
    vae, steps, seconds = train_stage(
        "vae", model.vae, vae_loss, evaluate, stage, run_dir, accelerator, config.train.seed
    )
    sample = torch.stack([frames[i]["frames"][0] for i in range(0, len(frames), max(1, len(frames) // 512))])
    vae.eval()
    vae.register_to_config(scaling_factor=measure_scaling_factor(vae, sample))
    model.vae = vae
    return steps, seconds


def latent_cache(model, data_path, run_dir, accelerator):
    model.vae.eval()
    stale = run_dir / "latents.pt"  # the cache of an earlier train.py, a pickle: never read
    if stale.is_file() and accelerator.is_main_process:
        print(f"note: {stale} is an old latent cache that is no longer read; delete it to free the space")
    with accelerator.main_process_first():  # one process encodes and writes the cache; the others read it
        return build_latent_cache(
            model.vae, data_path, run_dir / "latents.safetensors", show_progress=accelerator.is_main_process
        )


def run_dit_stage(model, config, stage, data_path, run_dir, train_ids, held_out_ids, accelerator):
    cache = latent_cache(model, data_path, run_dir, accelerator)
    rows = cache.window_starts(train_ids, config.history_length)
    device = accelerator.device

    def dit_loss(denoiser, draw):
        windows = random_rows(rows, stage.batch_size, draw)
        history, target, actions = cache.history_batch(windows, config.history_length, config.actions_seen)
        loss = flow_matching_loss(
            denoiser, target.to(device), history.to(device), actions.to(device), config.flow
        )
        return loss, windows

    evaluate = dit_samples(model, cache, data_path, held_out_ids, run_dir)
    model.denoiser, steps, seconds = train_stage(
        "dit", model.denoiser, dit_loss, evaluate, stage, run_dir, accelerator, config.train.seed
    )
    return steps, seconds


def run_heads_stage(model, config, stage, data_path, run_dir, train_ids, held_out_ids, accelerator):
    cache = latent_cache(model, data_path, run_dir, accelerator)
    rows = cache.transitions(train_ids)
    values = reward_values_of(cache.rewards)  # the rewards the game pays, as the file holds them
    if model.heads.config.reward_values != values:
        heads = model.heads.config
        model.heads = RewardEndHeads(heads.latent_channels, heads.num_actions, heads.hidden_channels, values)
    weight = end_weight(cache.transition_batch(rows)[4])

    def head_loss(heads, draw):
        windows = random_rows(rows, stage.batch_size, draw)
        batch = cache.transition_batch(windows)
        return heads_loss(heads, *(part.to(accelerator.device) for part in batch), end_weight=weight), windows

    evaluate = heads_metrics(cache, held_out_ids)
    model.heads, steps, seconds = train_stage(
        "heads", model.heads, head_loss, evaluate, stage, run_dir, accelerator, config.train.seed
    )
    # Where the end head says "ended": the threshold that scores best on the held-out episodes.
    previous, following, actions, _, terminated = cache.transition_batch(cache.transitions(held_out_ids))
    with torch.no_grad():
        _, end_logit = model.heads(*(part.to(accelerator.device) for part in (previous, following, actions)))
    model.heads.register_to_config(
        end_threshold=best_end_threshold(torch.sigmoid(end_logit).cpu(), terminated)
    )
    return steps, seconds


STAGE_RUNNERS = {"vae": run_vae_stage, "dit": run_dit_stage, "heads": run_heads_stage}


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
        data_path, run_dir = Path(args.data), Path(args.out)
        with recorder.load(data_path) as trajectories:
            num_episodes, action_meanings = len(trajectories), list(trajectories.action_meanings)
            episode_seeds = trajectories.seeds.tolist()
            if trajectories.env_id != config.env_id:
                raise ConfigError(
                    f"{data_path} was recorded from {trajectories.env_id} but the config is for {config.env_id}; "
                    f"use the matching config or set env_id={trajectories.env_id}"
                )
        lock_run(run_dir)
        check_run_config(run_dir, config)
    except (ConfigError, RunMismatchError, recorder.TrajectoryFormatError) as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    if num_episodes < 2:
        print(
            f"train.py: error: {data_path} holds {num_episodes} episode(s); record at least 2 "
            "(one is held out for evaluation)",
            file=sys.stderr,
        )
        return 2

    mixed = config.train.mixed_precision
    if mixed == "auto":
        mixed = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    accelerator = make_accelerator(mixed, run_dir)
    if problem := launch_problem(accelerator):
        print(f"train.py: error: {problem}", file=sys.stderr)
        return 2
    if accelerator.is_main_process:
        print(
            f"train.py: {accelerator.num_processes} process(es) ({accelerator.distributed_type.value}), "
            f"device {accelerator.device}, mixed precision {accelerator.mixed_precision}"
        )
    accelerator.init_trackers("logs")
    torch.manual_seed(config.train.seed + accelerator.process_index)
    train_ids, held_out_ids = recorder.split_episodes(  # a seed never on both sides
        num_episodes, config.train.held_out_fraction, config.train.seed, seeds=episode_seeds
    )
    checkpoint_dir = run_dir / "checkpoint"
    if (checkpoint_dir / "world_model.json").is_file():
        model = WorldModel.load(checkpoint_dir)
    elif args.init_from:
        try:
            model = initial_model(args.init_from, config, action_meanings)
        except (CheckpointError, ConfigError) as error:
            print(f"train.py: error: {error}", file=sys.stderr)
            return 2
    else:
        model = WorldModel.from_config(config, action_meanings)
    model.settings.config = config.to_dict()
    # Sampling defaults follow the config, so a retuned flow section reaches the checkpoint.
    model.settings.sampler = SamplerDefaults.from_flow(config.flow)
    stages = STAGES if args.stage == "all" else (args.stage,)
    done = model.settings.training.setdefault("stages", {})
    for name in stages:
        stage = getattr(config.train, name)
        accelerator.gradient_accumulation_steps = stage.gradient_accumulation_steps
        run = STAGE_RUNNERS[name]
        try:
            steps, seconds = run(
                model, config, stage, data_path, run_dir, train_ids, held_out_ids, accelerator
            )
        except TrainingStateError as error:
            print(f"train.py: error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(
                f"train.py: interrupted; the {name} stage's last save in {run_dir / 'state' / name} is kept: "
                "run the same command to go on from it",
                file=sys.stderr,
            )
            return 130
        done[name] = {
            "steps": steps,
            "seconds": round(seconds, 1),
            "data": str(data_path),
            "train_episodes": len(train_ids),
            "device": str(accelerator.device),
            "processes": accelerator.num_processes,  # each drew its own batch of stage.batch_size a step
        }
        if accelerator.is_main_process:
            model.save(checkpoint_dir)
            print(f"[{name}] done: {steps} steps in {seconds / 60:.1f} min; checkpoint at {checkpoint_dir}")
    accelerator.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
