"""PSNR and SSIM on constructed Pacman frames with known answers: identical, shifted by one tile, blank."""

import numpy as np
import pytest
import torch

import envs
from envs.maze import TILE
from worldmodel.metrics import MAX_PSNR, psnr, ssim


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    game = envs.PacmanEnv()
    frame, _ = game.reset(seed=0)
    return frame


def test_identical_frames_reach_the_psnr_cap_and_ssim_one(frame):
    frames = torch.from_numpy(np.stack([frame, frame]))
    assert psnr(frames, frames).tolist() == [MAX_PSNR, MAX_PSNR]
    assert torch.allclose(ssim(frames, frames), torch.ones(2))


def test_a_frame_shifted_by_one_tile_scores_lower_but_finite(frame):
    shifted = np.roll(frame, TILE, axis=1)
    value = psnr(torch.from_numpy(shifted)[None], torch.from_numpy(frame)[None])
    assert torch.isfinite(value).all() and 5 < value.item() < MAX_PSNR
    assert ssim(torch.from_numpy(shifted)[None], torch.from_numpy(frame)[None]).item() < 0.9


def test_a_blank_frame_scores_below_a_shifted_one(frame):
    target = torch.from_numpy(frame)[None]
    blank = torch.zeros_like(target)
    shifted = torch.from_numpy(np.roll(frame, TILE, axis=1))[None]
    assert psnr(blank, target).item() < psnr(shifted, target).item()


def test_psnr_is_per_frame_over_leading_dimensions(frame):
    frames = torch.from_numpy(np.stack([frame] * 6)).reshape(2, 3, *frame.shape)
    assert psnr(frames, frames).shape == (2, 3)
