"""What the benchmarks share: the machine they ran on, and writing a results file with its chart."""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def write_results(out: Path, lines: list[str], draw: Callable) -> None:
    """Writes ``lines`` to ``out`` and the chart ``draw(axis)`` makes beside it as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    figure, axis = plt.subplots(figsize=(10, 4.5))
    draw(axis)
    figure.tight_layout()
    figure.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(figure)
    print(f"wrote {out}")
