"""The adversarial-label matrix (AFT paper Fig. 1 / Fig. 4): which labels untargeted PGD examples
of non-target test images receive from an infected model and from a benign one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from backdoorlab.analysis.common import paired_runs, publish, untargeted_predictions
from backdoorlab.errors import ConfigError
from backdoorlab.plotting import pyplot, save_figure


def _summary(y: torch.Tensor, pred: torch.Tensor, k: int, target: int) -> dict[str, Any]:
    matrix = torch.zeros(k, k, dtype=torch.int64)
    matrix.index_put_((y.cpu(), pred.cpu()), torch.ones_like(y.cpu()), accumulate=True)
    shares = 100.0 * torch.bincount(pred.cpu(), minlength=k).float() / len(pred)
    return {
        "target_share": float(shares[target]),
        "label_shares": [round(float(s), 2) for s in shares],
        "matrix": matrix.tolist(),
    }


def adversarial_labels(
    infected: str | Path,
    benign: str | Path,
    out: str | Path,
    *,
    limit: int | None = None,
    eps: float = 8 / 255,
    steps: int = 10,
    alpha: float | None = None,
) -> dict[str, Any]:
    """Write `out`/adversarial-labels.json and .png; return the numbers.

    `target_share` is the % of the non-target images' adversarial examples labelled as the
    attack's target; compare it with the benign model's share for the same class.
    """
    inf, ben, data = paired_runs(infected, benign, limit)
    if inf.target is None:
        raise ConfigError(f"{inf.name} has no all-to-one attack target")
    t, k = inf.target, inf.test.num_classes
    result: dict[str, Any] = {"target": t, "eps": eps, "steps": steps, "images": len(data)}
    for key, run in (("infected", inf), ("benign", ben)):
        _, pred = untargeted_predictions(run.model, data, eps, steps, alpha)
        result[key] = {"run": run.name, **_summary(data.labels, pred, k, t)}
    result["gap"] = result["infected"]["target_share"] - result["benign"]["target_share"]
    return publish(result, out, "adversarial-labels", _plot)


def _plot(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    for ax, key in zip(axes, ("benign", "infected"), strict=True):
        m = torch.tensor(result[key]["matrix"], dtype=torch.float32)
        rows = m / m.sum(1, keepdim=True).clamp_min(1) * 100
        im = ax.imshow(rows.numpy(), cmap="viridis", vmin=0, vmax=100)
        ax.set_title(
            f"{key} ({result[key]['run']}): {result[key]['target_share']:.1f}% -> "
            f"class {result['target']}",
            fontsize=9,
        )
        ax.set_xlabel("label of the adversarial example")
        ax.set_ylabel("true class")
        ax.set_xticks(range(m.shape[1]))
        ax.set_yticks(range(m.shape[0]))
    fig.colorbar(im, ax=axes, label="% of the row", shrink=0.8)
    fig.suptitle(
        f"Untargeted L_inf PGD (eps {result['eps']:g}, {result['steps']} steps) on "
        f"{result['images']} non-target test images",
        fontsize=10,
    )
    save_figure(fig, path)
