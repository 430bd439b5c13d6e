"""Image fidelity metrics on uint8 frames: per-frame PSNR and SSIM, the numbers every report uses."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MAX_PSNR = 100.0  # identical frames would be infinite; capped so means stay finite


def _as_float(frames) -> torch.Tensor:
    return torch.as_tensor(frames).float()


def psnr(predicted, target) -> torch.Tensor:
    """Per-frame PSNR in dB of uint8 frames (..., H, W, 3), capped at MAX_PSNR for identical frames."""
    error = (_as_float(predicted) - _as_float(target)).pow(2).flatten(-3).mean(-1)
    value = 10 * torch.log10(255.0**2 / error.clamp_min(1e-10))
    return value.clamp(max=MAX_PSNR)


def pooled_psnr(predicted, target, mask=None) -> float:
    """One PSNR in dB from the mean squared error over all frames (..., H, W, 3) where ``mask`` (...)
    is True: unlike a mean of per-frame PSNRs, an unchanged frame does not count as 100 dB."""
    error = (_as_float(predicted) - _as_float(target)).pow(2).flatten(-3).mean(-1)  # (...)
    if mask is not None:
        error = error[torch.as_tensor(mask, dtype=torch.bool)]
    if error.numel() == 0:
        return float("nan")
    mean_error = float(error.mean())
    return MAX_PSNR if mean_error <= 0 else min(MAX_PSNR, 10 * float(np.log10(255.0**2 / mean_error)))


def _gaussian_window(size: int = 7, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - size // 2
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    return (kernel[:, None] * kernel[None, :])[None, None]  # (1, 1, size, size)


def ssim(predicted, target) -> torch.Tensor:
    """Per-frame SSIM (Wang et al. 2004, Gaussian window) of uint8 frames (N, H, W, 3), in [-1, 1]."""
    x = _as_float(predicted).movedim(-1, -3).flatten(0, -4)  # (N, 3, H, W)
    y = _as_float(target).movedim(-1, -3).flatten(0, -4)
    channels = x.shape[1]
    window = _gaussian_window().repeat(channels, 1, 1, 1)

    def blur(image):
        return F.conv2d(image, window, groups=channels)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    score = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return score.flatten(1).mean(-1)


def precision_recall(predicted, actual) -> tuple[float, float]:
    """(precision, recall) of boolean predictions; 0 where nothing was predicted / nothing happened."""
    predicted, actual = np.asarray(predicted, dtype=bool), np.asarray(actual, dtype=bool)
    hits = int((predicted & actual).sum())
    return hits / max(1, int(predicted.sum())), hits / max(1, int(actual.sum()))
