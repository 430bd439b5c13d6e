"""Training throughput of each stage (samples per second) for a config, and the held-out PSNR
curve of a training run against wall-clock time; writes bench/results/training.md and a PNG."""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

import envs  # noqa: E402
from worldmodel.config import load_config  # noqa: E402
from worldmodel.evaluate.names import PSNR_COPY_LAST, PSNR_TEACHER_FORCED  # noqa: E402
from worldmodel.flow import flow_matching_loss  # noqa: E402
from worldmodel.heads import heads_loss  # noqa: E402
from worldmodel.model import WorldModel  # noqa: E402
from worldmodel.vae import reconstruction_loss  # noqa: E402


def samples_per_second(module, loss_fn, batch_size: int, steps: int, device) -> float:
    """Median over steps of batch_size / step time (forward, backward, AdamW), after two warm-up steps."""
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
    rates = []
    for step in range(steps + 2):
        started = time.perf_counter()
        loss = loss_fn()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= 2:
            rates.append(batch_size / (time.perf_counter() - started))
    return statistics.median(rates)


def measure_stages(config, device, steps: int) -> dict[str, float]:
    model = WorldModel.from_config(config, list(envs.ACTION_MEANINGS)).to(device).train()
    s, train = model.settings, config.train
    latent = (s.latent_channels, s.latent_size, s.latent_size)

    def vae_loss():
        pixels = torch.rand(train.vae.batch_size, 3, s.frame_size, s.frame_size, device=device) * 2 - 1
        return reconstruction_loss(model.vae(pixels).sample, pixels)

    def dit_loss():
        b = train.dit.batch_size
        history = torch.randn(b, s.history_length, *latent, device=device)
        actions = torch.randint(0, s.num_actions, (b, s.action_window), device=device)
        return flow_matching_loss(
            model.denoiser, torch.randn(b, *latent, device=device), history, actions, config.flow
        )

    def head_loss():
        b = train.heads.batch_size
        return heads_loss(
            model.heads,
            torch.randn(b, *latent, device=device),
            torch.randn(b, *latent, device=device),
            torch.randint(0, s.num_actions, (b,), device=device),
            torch.rand(b, device=device),
            torch.rand(b, device=device) < 0.1,
        )

    return {
        "vae": samples_per_second(model.vae, vae_loss, train.vae.batch_size, steps, device),
        "dit": samples_per_second(model.denoiser, dit_loss, train.dit.batch_size, steps, device),
        "heads": samples_per_second(model.heads, head_loss, train.heads.batch_size, steps, device),
    }


def dit_minutes(settings_path: Path) -> float:
    return json.loads(settings_path.read_text())["training"]["stages"]["dit"]["seconds"] / 60


def read_curve(run_dirs: list[Path]) -> list[dict]:
    """The DiT evaluations of one run, or of runs that continue one another (``--init-from``), with the
    minutes counted from the first run's start."""
    rows, offset = [], 0.0
    for run_dir in run_dirs:
        log = run_dir / "dit_eval.csv"
        run_rows = list(csv.DictReader(log.open())) if log.is_file() else []
        if not run_rows:
            continue
        for row in run_rows:
            rows.append({**row, "run": run_dir.name, "minutes": offset + float(row["seconds"]) / 60})
        settings = run_dir / "checkpoint" / "world_model.json"
        # The next run starts where this stage ended, which may be after its last evaluation.
        offset += dit_minutes(settings) if settings.is_file() else float(run_rows[-1]["seconds"]) / 60
    return rows


def plot_curve(rows: list[dict], out_png: Path) -> None:
    """Held-out teacher-forced PSNR and copy-last PSNR of the DiT evaluations against minutes trained."""
    plt.figure(figsize=(6, 4))
    for run in dict.fromkeys(r["run"] for r in rows):
        part = [r for r in rows if r["run"] == run]
        plt.plot([r["minutes"] for r in part], [float(r[PSNR_TEACHER_FORCED]) for r in part], "o-", label=run)
    plt.plot(
        [r["minutes"] for r in rows],
        [float(r[PSNR_COPY_LAST]) for r in rows],
        "--",
        label="copy last frame",
    )
    plt.xlabel("DiT training time (minutes)")
    plt.ylabel("held-out next-frame PSNR (dB)")
    plt.title("next-frame PSNR during training")
    plt.grid(alpha=0.3)
    plt.legend()
    plt.tight_layout()
    plt.savefig(out_png, dpi=120)
    plt.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="configs/pacman-64.yaml")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per stage")
    parser.add_argument(
        "--run",
        nargs="+",
        default=["runs/pacman-64"],
        help="a training run whose PSNR curve to plot, or several that continue one another, in order",
    )
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = load_config(args.config)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rates = {device.type: measure_stages(config, device, args.steps) for device in devices}
    curve = read_curve([Path(run) for run in args.run])
    if curve:
        plot_curve(curve, out / "training_curve.png")

    lines = [
        "# Training throughput",
        "",
        f"Command: `python bench/bench_training.py --config {args.config} --steps {args.steps} --run {' '.join(args.run)}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads.",
        "",
        "Samples per second (forward + backward + AdamW, median over steps, synthetic inputs of the config's shapes):",
        "",
        "| device | vae (frames/s) | dit (windows/s) | heads (transitions/s) |",
        "|---|---|---|---|",
    ]
    for device, stage_rates in rates.items():
        lines.append(
            f"| {device} | {stage_rates['vae']:.0f} | {stage_rates['dit']:.0f} | {stage_rates['heads']:.0f} |"
        )
    if curve:
        best = max(curve, key=lambda r: float(r[PSNR_TEACHER_FORCED]))
        lines += [
            "",
            f"## Held-out next-frame PSNR against training time ({', '.join(args.run)})",
            "",
            "![PSNR curve](training_curve.png)",
            "",
            "| run | DiT step | minutes | teacher-forced PSNR (dB) | copy-last PSNR (dB) |",
            "|---|---|---|---|---|",
            *(
                f"| {r['run']} | {r['step']} | {r['minutes']:.1f} | {float(r['psnr_teacher_forced']):.2f} | "
                f"{float(r['psnr_copy_last']):.2f} |"
                for r in curve
            ),
            "",
            f"Best: {float(best['psnr_teacher_forced']):.2f} dB at {best['minutes']:.1f} minutes, "
            f"{float(best['psnr_teacher_forced']) - float(best['psnr_copy_last']):+.2f} dB over copy-last.",
        ]
    (out / "training.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
