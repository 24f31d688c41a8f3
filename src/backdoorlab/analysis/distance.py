"""Feature distances between adversarial and triggered samples (AFT paper Table I):
D_infected = mean ||f(x_adv') - f(x_trig)||_2 under the infected model, D_benign the same under
a benign model, with f the penultimate features (the last conv layer, pooled)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from backdoorlab.analysis.common import paired_runs, publish, untargeted_predictions
from backdoorlab.plotting import pyplot, save_figure


@torch.no_grad()
def _features(model, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    return torch.cat([model.features(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def feature_distances(
    infected: str | Path,
    benign: str | Path,
    out: str | Path,
    *,
    eps: float = 8 / 255,
    steps: int = 10,
    alpha: float | None = None,
    limit: int | None = 1000,
) -> dict[str, Any]:
    """Write `out`/feature-distances.json and .png; return the numbers."""
    inf, ben, data = paired_runs(infected, benign, limit)
    x = data.floats()
    x_trig, _ = inf.attack.apply(x, data.labels)
    result: dict[str, Any] = {"eps": eps, "steps": steps, "images": len(data)}
    for key, run in (("infected", inf), ("benign", ben)):
        adv, _ = untargeted_predictions(run.model, data, eps, steps, alpha)
        f_trig = _features(run.model, x_trig)
        result[key] = {
            "run": run.name,
            "adversarial_to_triggered": float(
                (_features(run.model, adv) - f_trig).norm(dim=1).mean()
            ),
            "clean_to_triggered": float((_features(run.model, x) - f_trig).norm(dim=1).mean()),
        }
    result["D_infected"] = result["infected"]["adversarial_to_triggered"]
    result["D_benign"] = result["benign"]["adversarial_to_triggered"]
    return publish(result, out, "feature-distances", _plot)


def _plot(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    keys = ("benign", "infected")
    for i, what in enumerate(("adversarial_to_triggered", "clean_to_triggered")):
        vals = [result[k][what] for k in keys]
        ax.bar([j + 0.38 * i for j in range(2)], vals, width=0.36, label=what.replace("_", " "))
    ax.set_xticks([0.19, 1.19])
    ax.set_xticklabels([f"{k}\n({result[k]['run']})" for k in keys], fontsize=8)
    ax.set_ylabel("mean L2 distance of features")
    ax.legend(fontsize=8)
    ax.set_title(f"D_benign {result['D_benign']:.2f} vs D_infected {result['D_infected']:.2f}")
    fig.tight_layout()
    save_figure(fig, path)
