"""The shipped configs reach the numbers the README promises (full runs, tens of seconds)."""

from pathlib import Path

import pytest

from backdoorlab.experiment import run

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ONE_THREAD = ["performance.threads=1"]  # one per xdist worker (the configs fix 2 for the README)


@pytest.mark.slow
def test_quickstart_backdoors_digits():
    result = run(CONFIGS / "quickstart.yaml", overrides=ONE_THREAD, save=False, progress=False)
    assert result.metrics.acc >= 90
    assert result.metrics.asr >= 90


@pytest.mark.slow
def test_mnist_badnets_on_real_mnist(mnist_dir):
    result = run(
        CONFIGS / "mnist-badnets.yaml",
        overrides=[f"dataset.root={mnist_dir}"],
        save=False,
        progress=False,
    )
    assert result.poisoned.count == 400  # 5% of 8,000
    assert result.metrics.acc >= 97
    assert result.metrics.asr >= 95


@pytest.mark.slow
def test_quickstart_cat_removes_the_blended_backdoor():
    attacked = run(
        CONFIGS / "quickstart-blended.yaml", overrides=ONE_THREAD, save=False, progress=False
    )
    defended = run(
        CONFIGS / "quickstart-cat.yaml", overrides=ONE_THREAD, save=False, progress=False
    )
    assert attacked.metrics.asr >= 90  # the backdoor is there without defense
    assert defended.metrics.asr <= 10
    assert defended.metrics.acc >= 90
