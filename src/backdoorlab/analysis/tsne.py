"""t-SNE of penultimate features of clean and triggered test samples (CAT paper Fig. 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from backdoorlab.analysis.common import load_run, publish
from backdoorlab.plotting import pyplot, save_figure


def feature_tsne(
    run: str | Path, out: str | Path, *, count: int = 500, seed: int = 0
) -> dict[str, Any]:
    """Write `out`/tsne.json (2-D points) and tsne.png for `count` clean and `count` triggered
    test images of a run."""
    from sklearn.manifold import TSNE

    r = load_run(run)
    gen = torch.Generator().manual_seed(seed)
    n = len(r.test)
    clean_idx = torch.randperm(n, generator=gen)[:count].to(r.test.device)
    eligible = r.attack.asr_mask(r.test.labels).nonzero().squeeze(1)
    trig_idx = eligible[torch.randperm(len(eligible), generator=gen)[:count].to(eligible.device)]
    x_trig, _ = r.attack.apply(r.test.floats(trig_idx), r.test.labels[trig_idx])
    with torch.no_grad():
        feats = torch.cat([r.model.features(r.test.floats(clean_idx)), r.model.features(x_trig)])
    points = TSNE(2, init="pca", random_state=seed, perplexity=30).fit_transform(
        feats.cpu().numpy()
    )
    k = len(clean_idx)
    result = {
        "run": r.name,
        "clean": {"labels": r.test.labels[clean_idx].tolist(), "points": points[:k].tolist()},
        "triggered": {"labels": r.test.labels[trig_idx].tolist(), "points": points[k:].tolist()},
    }
    return publish(result, out, "tsne", _plot)


def _plot(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    import numpy as np

    fig, ax = plt.subplots(figsize=(5.6, 5))
    c = np.array(result["clean"]["points"])
    sc = ax.scatter(c[:, 0], c[:, 1], c=result["clean"]["labels"], cmap="tab10", s=8)
    t = np.array(result["triggered"]["points"])
    ax.scatter(t[:, 0], t[:, 1], c="black", marker="x", s=14, label="triggered")
    classes = ax.legend(*sc.legend_elements(), fontsize=7, title="clean class", loc="upper right")
    ax.add_artist(classes)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(f"t-SNE of penultimate features: {result['run']}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    save_figure(fig, path)
