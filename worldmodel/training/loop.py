"""The loop every training stage shares: AdamW with warmup and an optional cooldown, EMA weights,
gradient accumulation, resumable saves and held-out evaluations, on one process or many."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from diffusers.training_utils import EMAModel
from tqdm import tqdm

from worldmodel.training.processes import keep_gradient_layout, on_every_process, record_first_windows
from worldmodel.training.state import load_training_state, save_training_state

# batch_loss(module, batch_seed) -> (loss, (B, 2) windows as (episode, frame)); evaluate(module, step) -> metrics
BatchLoss = Callable[[torch.nn.Module, int], tuple[torch.Tensor, np.ndarray]]
Evaluate = Callable[[torch.nn.Module, int], dict[str, float]]


def state_dir(run_dir: Path, name: str) -> Path:
    """Where stage ``name`` keeps its resumable state: runs on disk are resumed from here."""
    return run_dir / "state" / name


def learning_rate_factor(step: int, warmup_steps: int, total_steps: int, decay_steps: int) -> float:
    """Linear warmup, then constant, then (when decay_steps > 0) a linear fall to zero at total_steps."""
    warmup = min(1.0, (step + 1) / max(1, warmup_steps))
    if decay_steps <= 0:
        return warmup
    return warmup * min(1.0, max(0.0, (total_steps - step) / decay_steps))


def learning_rate_schedule(optimizer: torch.optim.Optimizer, stage) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: learning_rate_factor(step, stage.warmup_steps, stage.steps, stage.decay_steps),
    )


def random_rows(rows: np.ndarray, batch_size: int, batch_seed: int | list[int]) -> np.ndarray:
    """A random batch of rows, a pure function of the seed so a resumed run draws the same data."""
    rng = np.random.default_rng(batch_seed)
    return rows[rng.integers(0, len(rows), size=batch_size)]


def batch_seed(seed: int, step: int, accelerator) -> int:
    """Distinct per step and per process (so each process trains on its own windows), identical across
    a resume; on one process, seed * 1_000_003 + step."""
    return seed * 1_000_003 + step * accelerator.num_processes + accelerator.process_index


class StageLoop:
    """One stage training ``module``, from its last save if it has one. On N processes each draws its
    own batch and accelerate's DDP averages the gradients, so a step sees N batches."""

    def __init__(self, name: str, module: torch.nn.Module, stage, run_dir: Path, accelerator):
        self.name, self.stage, self.run_dir, self.accelerator = name, stage, run_dir, accelerator
        optimizer = torch.optim.AdamW(
            module.parameters(), lr=stage.learning_rate, weight_decay=stage.weight_decay
        )
        schedule = learning_rate_schedule(optimizer, stage)
        if accelerator.num_processes > 1:
            keep_gradient_layout(module)
        self.module, self.optimizer, self.schedule = accelerator.prepare(module, optimizer, schedule)
        # Kept by save/load_training_state as safetensors, not registered with accelerate, whose resume
        # would unpickle it in full.
        self.ema = EMAModel(accelerator.unwrap_model(self.module).parameters(), decay=stage.ema_decay)
        self.state_dir = state_dir(run_dir, name)
        progress = load_training_state(accelerator, self.state_dir, self.ema) or {"step": 0, "elapsed": 0.0}
        if progress["step"] and accelerator.is_main_process:
            print(f"[{name}] resuming from step {progress['step']} ({self.state_dir})")
        self.ema.to(accelerator.device)
        self.step, self.started = progress["step"], time.monotonic() - progress["elapsed"]
        self.log_path = run_dir / f"{name}_eval.csv"
        self.bar = None

    def run(self, batch_loss: BatchLoss, evaluate: Evaluate, seed: int) -> tuple[torch.nn.Module, int, float]:
        """Trains to ``stage.steps`` or its time limit; returns the EMA weights' module, the step reached
        and the seconds trained (across resumes)."""
        accelerator, module, stage = self.accelerator, self.module, self.stage
        self.bar = tqdm(
            total=stage.steps,
            initial=self.step,
            desc=f"train {self.name}",
            disable=not accelerator.is_main_process,
        )
        module.train()
        first_step = True
        while self.step < stage.steps and not self.out_of_time():
            with accelerator.accumulate(module):
                loss, windows = batch_loss(module, batch_seed(seed, self.step, accelerator))
                if first_step and accelerator.num_processes > 1:
                    record_first_windows(
                        accelerator, self.run_dir / f"{self.name}_first_windows.json", windows
                    )
                first_step = False
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(module.parameters(), 1.0)
                self.optimizer.step()
                self.schedule.step()
                self.optimizer.zero_grad()
            if not accelerator.sync_gradients:
                continue
            self.ema.step(module.parameters())
            self.step += 1
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss.item():.4f}")
            accelerator.log(
                {f"{self.name}/loss": loss.item(), f"{self.name}/lr": self.schedule.get_last_lr()[0]},
                step=self.step,
            )
            if self.step % stage.save_every == 0:
                self.save()
            if self.step % stage.eval_every == 0:
                self.evaluate(evaluate)
        self.bar.close()
        self.save()
        if self.step % stage.eval_every != 0:
            self.evaluate(evaluate)
        self.ema.copy_to(module.parameters())  # what is shipped is the EMA of the weights
        trained = accelerator.unwrap_model(module)
        forget_stage(accelerator)
        return trained, self.step, self.elapsed()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def out_of_time(self) -> bool:
        # The main process's clock decides for all: a process that stopped alone would leave the
        # others waiting forever in DDP's gradient all-reduce.
        limit = self.stage.max_minutes
        return bool(limit) and on_every_process(self.accelerator, self.elapsed() > limit * 60)

    def save(self) -> None:
        save_training_state(
            self.accelerator, self.state_dir, {"step": self.step, "elapsed": self.elapsed()}, self.ema
        )

    def evaluate(self, evaluate: Evaluate) -> None:
        """Scores the EMA weights on held-out data (main process), into the logs and ``<stage>_eval.csv``."""
        accelerator, module, ema, step = self.accelerator, self.module, self.ema, self.step
        ema.store(module.parameters())
        ema.copy_to(module.parameters())
        module.eval()
        metrics = evaluate(accelerator.unwrap_model(module), step) if accelerator.is_main_process else {}
        module.train()
        ema.restore(module.parameters())
        if not metrics:
            return
        accelerator.log({f"{self.name}/{key}": value for key, value in metrics.items()}, step=step)
        new_file = not self.log_path.exists()
        with self.log_path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["step", "seconds", *metrics])
            if new_file:
                writer.writeheader()
            writer.writerow({"step": step, "seconds": round(self.elapsed(), 1), **metrics})
        self.bar.write(f"[{self.name}] step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))


def forget_stage(accelerator) -> None:
    """Unregisters a finished stage's model, optimiser and schedule from the accelerator.

    ``save_state`` writes everything registered, in order; without this, the next stage's state
    would hold the previous stage's model first, and a later ``--stage dit`` resume would load
    the autoencoder's weights into the denoiser. ``free_memory`` is accelerate's public way to
    empty those lists.
    """
    accelerator.free_memory()
