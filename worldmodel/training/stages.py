"""The training stages, each a batch loss and a held-out evaluation handed to the shared loop: the
autoencoder on recorded frames (vae), the denoiser on cached latents (dit), the reward/end heads, and
the one-pass denoiser distilled from a trained checkpoint's sampler (distill)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

import recorder
from worldmodel.branches import build_branch_cache
from worldmodel.config import ConfigError
from worldmodel.data import LatentCache, build_latent_cache
from worldmodel.distill import distillation_loss, one_pass, with_random_keys
from worldmodel.flow import changed_cell_weights, flow_matching_loss, own_rollout_history
from worldmodel.heads import RewardEndHeads, best_end_threshold, end_weight, heads_loss, reward_values_of
from worldmodel.sampler import make_sampler
from worldmodel.samples import decoder_samples, dit_samples, heads_metrics, vae_samples
from worldmodel.training.loop import StageLoop, random_rows
from worldmodel.vae import frames_to_tensor, measure_scaling_factor, reconstruction_loss

if TYPE_CHECKING:
    from worldmodel.training.run import TrainingRun


def train_vae(run: TrainingRun, stage) -> tuple[int, float]:
    """Trains the autoencoder, then measures the latent scaling factor on a sample of the frames."""
    model, accelerator = run.model, run.accelerator
    frames = recorder.WindowDataset(run.data_path, window=1, episodes=run.train_ids)
    if len(frames) < stage.batch_size:  # the loader drops incomplete batches: it would hold none
        raise ConfigError(
            f"the training episodes of {run.data_path} hold {len(frames)} frames, fewer than "
            f"train.vae.batch_size={stage.batch_size}; lower it or record more episodes"
        )
    loader = torch.utils.data.DataLoader(
        frames,
        batch_size=stage.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=run.config.train.num_workers,
    )
    batches = epoch_after_epoch(accelerator.prepare(loader))

    def vae_loss(vae, _draw):  # the loader shuffles the frames, so the draw's seed goes unused
        batch = next(batches)
        pixels = frames_to_tensor(batch["frames"][:, 0])  # (B, 3, H, W)
        windows = torch.stack([batch["episode"], batch["frame_index"]], dim=1).cpu().numpy()
        return reconstruction_loss(vae(pixels).sample, pixels), windows

    evaluate = vae_samples(run.data_path, run.held_out_ids, run.run_dir)
    loop = StageLoop("vae", model.vae, stage, run.run_dir, accelerator)
    vae, steps, seconds = loop.run(vae_loss, evaluate, run.config.train.seed)
    sample = torch.stack([frames[i]["frames"][0] for i in range(0, len(frames), max(1, len(frames) // 512))])
    vae.eval()
    vae.register_to_config(scaling_factor=measure_scaling_factor(vae, sample))
    model.vae = vae
    return steps, seconds


def epoch_after_epoch(loader) -> Iterator[dict]:
    """The loader's batches without end, a fresh pass (and shuffle) begun when one runs out."""
    while True:
        yield from loader


def latent_cache(run: TrainingRun) -> LatentCache:
    """The recording encoded by the run's autoencoder, built once and kept in the run directory."""
    run.model.vae.eval()
    stale = run.run_dir / "latents.pt"  # the cache of an earlier train.py, a pickle: never read
    if stale.is_file() and run.accelerator.is_main_process:
        print(f"note: {stale} is an old latent cache that is no longer read; delete it to free the space")
    cache_path = run.run_dir / "latents.safetensors"
    beside_teacher = run.teacher_dir.parent / cache_path.name if run.teacher_dir else None
    if (
        not cache_path.exists()
        and beside_teacher
        and beside_teacher.is_file()
        and run.accelerator.is_main_process
    ):
        # The teacher's run encoded this recording with this autoencoder: share its file (the key
        # read below still checks that), rather than encode every frame again.
        with contextlib.suppress(OSError):  # another file system: encoded again below
            os.link(beside_teacher, cache_path)
    with run.accelerator.main_process_first():  # one process encodes and writes the cache; the others read it
        return build_latent_cache(
            run.model.vae,
            run.data_path,
            cache_path,
            show_progress=run.accelerator.is_main_process,
        )


def branch_cache(run: TrainingRun) -> torch.Tensor:
    """The next latent of every recorded step under every key, built once and kept in the run directory."""
    with run.accelerator.main_process_first():  # one process replays and writes the cache; the others read it
        return build_branch_cache(
            run.model.vae,
            run.data_path,
            run.run_dir / "branches.safetensors",
            episodes=run.config.flow.branch_episodes,
            workers=run.config.train.num_workers,
            show_progress=run.accelerator.is_main_process,
        )


def train_dit(run: TrainingRun, stage) -> tuple[int, float]:
    """Trains the denoiser by flow matching on windows of cached latents."""
    model, config = run.model, run.config
    batches = WindowBatches(run, latent_cache(run), make_sampler(config.sampler))

    def dit_loss(denoiser, draw):
        windows, history, target, actions = batches.draw(stage.batch_size, draw, denoiser)
        return flow_matching_loss(denoiser, target, history, actions, config.flow), windows

    evaluate = dit_samples(model, batches.cache, run.data_path, run.held_out_ids, run.run_dir)
    loop = StageLoop("dit", model.denoiser, stage, run.run_dir, run.accelerator)
    model.denoiser, steps, seconds = loop.run(dit_loss, evaluate, config.train.seed)
    return steps, seconds


class WindowBatches:
    """Batches of training windows (history, next latent, action window) from the cache, the first
    ``flow.rollout_fraction`` of each batch with its last ``flow.rollout_steps`` history frames played
    by the model being trained, under the recorded keys (FlowConfig): the states its own drift makes;
    the last ``flow.branch_fraction`` with a random key and the real game's next frame under it."""

    def __init__(self, run: TrainingRun, cache: LatentCache, sampler):
        self.cache, self.config, self.sampler = cache, run.config, sampler
        self.device = run.accelerator.device
        self.rows = cache.window_starts(run.train_ids, self.config.history_length)
        self.rollout_rows = rollout_rows_of(self.rows, self.config)
        fraction, episodes = self.config.flow.branch_fraction, self.config.flow.branch_episodes
        if not 0.0 <= fraction <= 1.0:
            raise ConfigError(f"flow.branch_fraction must be in [0, 1], got {fraction}")
        if episodes < 0:
            raise ConfigError(f"flow.branch_episodes must be 0 (every episode) or more, got {episodes}")
        self.branches = branch_cache(run) if fraction else None
        if self.branches is not None:
            # The windows whose target step was branched: those of the episodes the cache covers.
            self.branch_rows = self.rows[self.target_steps(self.rows) < len(self.branches)]
            if not len(self.branch_rows):
                raise ConfigError(
                    f"flow.branch_episodes={self.config.flow.branch_episodes} covers no training window of "
                    f"{run.data_path}; raise it (0 branches every episode)"
                )

    def draw(self, batch_size: int, draw, denoiser):
        config = self.config
        windows = random_rows(self.rows, batch_size, draw)
        count = round(config.flow.rollout_fraction * len(windows)) if len(self.rollout_rows) else 0
        if count:
            windows[:count] = random_rows(self.rollout_rows, count, [draw, 1])
        branched = round(config.flow.branch_fraction * len(windows)) if self.branches is not None else 0
        if branched:
            windows[-branched:] = random_rows(self.branch_rows, branched, [draw, 3])
        history, target, actions = (
            part.to(self.device)
            for part in self.cache.history_batch(windows, config.history_length, config.actions_seen)
        )
        if count:
            history[:count] = own_rollout_history(
                self.sampler, denoiser, self.rollout_windows(windows[:count]), history[:count]
            )
        if branched:
            target[-branched:], actions[-branched:, -1] = self.branch_targets(windows[-branched:], [draw, 4])
        return windows, history, target, actions

    def branch_targets(self, windows: np.ndarray, seed) -> tuple[torch.Tensor, torch.Tensor]:
        """A uniformly random key for each window's last step, and the real next latent under it."""
        keys = np.random.default_rng(seed).integers(0, self.branches.shape[1], size=len(windows))
        target = self.branches[torch.from_numpy(self.target_steps(windows)), torch.from_numpy(keys)].float()
        return target.to(self.device), torch.from_numpy(keys).to(self.device)

    def target_steps(self, windows: np.ndarray) -> np.ndarray:
        """The recording-wide index of the step that produces each window's next frame."""
        return self.cache.step_start[windows[:, 0]] + windows[:, 1] + self.config.history_length - 1

    def rollout_windows(self, ends: np.ndarray) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The recorded (history, action window) of each step the rollouts ending at ``ends`` play."""
        config = self.config
        steps, windows = config.flow.rollout_steps, []
        for j in range(steps):
            history, _, actions = self.cache.history_batch(
                ends - [0, steps - j], config.history_length, config.actions_seen
            )
            windows.append((history.to(self.device), actions.to(self.device)))
        return windows


def rollout_rows_of(rows: np.ndarray, config) -> np.ndarray:
    """The windows that can have their last ``flow.rollout_steps`` history frames generated: those
    with that many recorded frames before them in the episode; none when rollouts are off."""
    flow = config.flow
    if not 0.0 <= flow.rollout_fraction <= 1.0 or not 1 <= flow.rollout_steps <= config.history_length:
        raise ConfigError(
            f"flow.rollout_fraction must be in [0, 1] and flow.rollout_steps in 1..{config.history_length} "
            f"(the history length), got {flow.rollout_fraction} and {flow.rollout_steps}"
        )
    if flow.rollout_fraction == 0:
        return rows[:0]
    return rows[rows[:, 1] >= flow.rollout_steps]


def train_heads(run: TrainingRun, stage) -> tuple[int, float]:
    """Trains the reward and end heads on cached transitions, then picks the end head's threshold."""
    model, device = run.model, run.accelerator.device
    cache = latent_cache(run)
    rows = cache.transitions(run.train_ids)
    values = reward_values_of(cache.rewards)  # the rewards the game pays, as the file holds them
    if model.heads.config.reward_values != values:
        heads = model.heads.config
        model.heads = RewardEndHeads(heads.latent_channels, heads.num_actions, heads.hidden_channels, values)
    weight = end_weight(cache.transition_batch(rows)[4])

    def head_loss(heads, draw):
        windows = random_rows(rows, stage.batch_size, draw)
        batch = cache.transition_batch(windows)
        return heads_loss(heads, *(part.to(device) for part in batch), end_weight=weight), windows

    evaluate = heads_metrics(cache, run.held_out_ids)
    loop = StageLoop("heads", model.heads, stage, run.run_dir, run.accelerator)
    model.heads, steps, seconds = loop.run(head_loss, evaluate, run.config.train.seed)
    # Where the end head says "ended": the threshold that scores best on the held-out episodes.
    previous, following, actions, _, terminated = cache.transition_batch(cache.transitions(run.held_out_ids))
    with torch.no_grad():
        _, end_logit = model.heads(*(part.to(device) for part in (previous, following, actions)))
    model.heads.register_to_config(
        end_threshold=best_end_threshold(torch.sigmoid(end_logit).cpu(), terminated)
    )
    return steps, seconds


def train_distill(run: TrainingRun, stage) -> tuple[int, float]:
    """Teaches the run's denoiser (a copy of the teacher's) to do in one pass what the teacher's
    sampler does in several; the checkpoint's default sampler becomes that one pass."""
    model, config, device = run.model, run.config, run.accelerator.device
    teacher = run.teacher.to(device).eval().requires_grad_(False)
    teacher_sampler = teacher.sampler
    # What the training-time samples score and what the checkpoint will play with.
    config.sampler = one_pass(teacher.settings.sampler)
    cache = latent_cache(run)
    if model.vae.config.decoder_block_out_channels != teacher.vae.config.decoder_block_out_channels:
        distill_decoder(run, teacher, cache)
    # With flow.rollout_fraction, part of each batch starts from the student's own one-pass play
    # (its drift), and the teacher says where the next frame should land from there.
    batches = WindowBatches(run, cache, make_sampler(config.sampler))
    num_actions = model.settings.num_actions

    def distill_loss(student, draw):
        windows, history, _, actions = batches.draw(stage.batch_size, draw, student)
        if config.flow.random_key_fraction:  # FlowConfig: the teacher answers keys the recording lacks
            actions = with_random_keys(actions, config.flow.random_key_fraction, num_actions, [draw, 2])
        loss = distillation_loss(student, teacher.denoiser, teacher_sampler, history, actions, config.flow)
        return loss, windows

    evaluate = dit_samples(model, cache, run.data_path, run.held_out_ids, run.run_dir)
    loop = StageLoop("distill", model.denoiser, stage, run.run_dir, run.accelerator)
    model.denoiser, steps, seconds = loop.run(distill_loss, evaluate, config.train.seed)
    return steps, seconds


def distill_decoder(run: TrainingRun, teacher, cache: LatentCache) -> None:
    """Teaches the run's slimmer decoder to draw from each recorded latent the frame the teacher's
    decoder draws (train.distill_decoder); the encoder, and so the latent space, stay the teacher's."""
    model, device, stage = run.model, run.accelerator.device, run.config.train.distill_decoder
    # Every frame but each episode's first, which has no frame before it to tell what moved.
    frame_rows = np.concatenate(
        [
            np.arange(cache.frame_start[e] + 1, cache.frame_start[e] + cache.length[e] + 1)
            for e in run.train_ids
        ]
    )
    scale = model.vae.config.scaling_factor
    teacher_decoder = teacher.vae.decoder
    frame_size = run.config.frame_size

    def decoder_loss(decoder, draw):
        rows = random_rows(frame_rows, stage.batch_size, draw)
        scaled = cache.latents[torch.from_numpy(rows)].to(device)
        before = cache.latents[torch.from_numpy(rows - 1)].to(device)
        latents = scaled / scale
        with torch.no_grad():
            target = teacher_decoder(latents)
        # The tiles that changed since the frame before (the sprites) weigh as in the denoiser's loss:
        # unweighted, a slimmer decoder drew Pacman too faintly for the frame parser to find.
        weight = changed_cell_weights(scaled, before, run.config.flow)[:, None]  # (B, 1, h, w)
        weight = F.interpolate(weight, size=(frame_size, frame_size), mode="nearest")
        return reconstruction_loss(decoder(latents), target, weight), rows

    evaluate = decoder_samples(teacher.vae, run.data_path, run.held_out_ids, run.run_dir)
    loop = StageLoop("distill_decoder", model.vae.decoder, stage, run.run_dir, run.accelerator)
    model.vae.decoder, steps, seconds = loop.run(decoder_loss, evaluate, run.config.train.seed)
    run.stage_records["distill_decoder"] = {"steps": steps, "seconds": round(seconds, 1)}


STAGE_TRAINERS = {"vae": train_vae, "dit": train_dit, "heads": train_heads, "distill": train_distill}
