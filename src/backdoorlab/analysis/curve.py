"""The AFT fine-tuning curve (AFT paper Fig. 3): ACC and ASR against fine-tuning steps."""

from __future__ import annotations

from pathlib import Path

from backdoorlab.errors import ConfigError
from backdoorlab.plotting import pyplot, save_figure
from backdoorlab.records.metrics import Metrics
from backdoorlab.records.record import read_run
from backdoorlab.report import draw_aft_curve


def aft_curve(run: str | Path, out: str | Path) -> Path:
    """Write the PNG `out` from the curve an AFT run recorded (test ACC/ASR every few steps)."""
    r = read_run(run)
    return draw_curve(r.name, r.metrics, out)


def draw_curve(name: str, metrics: Metrics, out: str | Path) -> Path:
    """Write the PNG `out` from an AFT run's metrics (its run folder, or its database row)."""
    plt = pyplot()
    curve = metrics.aft_curve
    if not curve:
        raise ConfigError(f"{name} is not an AFT run (no aft_curve in its metrics)")
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    draw_aft_curve(ax, curve)
    stop = metrics.named("aft_stopped_at_step")
    if stop is not None:
        ax.axvline(stop, c="gray", ls="--", lw=1, label=f"kept (step {stop})")
    ax.set_xlabel("fine-tuning step")
    ax.set_ylabel("%")
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(name, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, Path(out))
