"""Performance switches: passed explicitly, layout-only (same numbers), CUDA-only autocast, and
the process-wide torch switches restored after a run."""

from __future__ import annotations

import contextlib

import torch

from backdoorlab.models import MODELS, build_model
from backdoorlab.train.perf import Performance, autocast, performance, prepare_model


def test_process_wide_switches_are_restored_after_the_block():
    threads = torch.get_num_threads()
    with performance(Performance(threads=1, deterministic=True)) as p:
        assert p.threads == 1 and torch.get_num_threads() == 1
        assert torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()


def test_channels_last_changes_the_layout_not_the_predictions(synthetic):
    torch.manual_seed(0)
    s = synthetic(num_classes=4, size=12)
    model = build_model(MODELS.validate({"name": "small_cnn", "width": 8}), s.train.spec).eval()
    x = s.test.floats()
    before = model(x)
    prepare_model(model)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(model(x), before, rtol=1e-4, atol=1e-5)
    fresh = build_model(MODELS.validate({"name": "small_cnn", "width": 8}), s.train.spec)
    prepare_model(fresh, Performance(channels_last=False))
    conv = next(m for m in fresh.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous()


def test_bf16_autocast_applies_on_cuda_only():
    bf16 = Performance(amp="bf16")
    assert isinstance(autocast(torch.device("cpu"), bf16), contextlib.nullcontext)
    assert isinstance(autocast(torch.device("cpu")), contextlib.nullcontext)
    if torch.cuda.is_available():
        assert isinstance(autocast(torch.device("cuda"), bf16), torch.autocast)
        assert isinstance(autocast(torch.device("cuda")), contextlib.nullcontext)


def test_a_one_channel_model_is_converted_whole(synthetic):
    """A [C,1,k,k] stem weight is channels_last-contiguous in either layout: the check must not
    stop at it (it did, and MNIST models ran PGD in the slow mixed layout)."""
    s = synthetic(num_classes=4, size=12)
    spec = s.train.spec.__class__(1, (12, 12), 4, (0.5,), (0.5,))
    model = build_model(MODELS.validate({"name": "small_cnn", "width": 8}), spec)
    prepare_model(model)
    convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) > 1 and convs[0].shape[1] == 1
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)


def test_fit_hands_its_switches_to_the_hooks_and_the_pgd_they_run(synthetic):
    """AT's recipe crafts with the run's switches: a model trained without channels_last stays
    in the plain layout through the PGD inside training."""
    from backdoorlab.perturb import LinfBall
    from backdoorlab.perturb.pgd import Perturbation, PerturbBatch
    from backdoorlab.train import TrainConfig, fit
    from backdoorlab.train.hooks import Hook

    s = synthetic(num_classes=4, size=12, train_size=64)
    model = build_model(MODELS.validate({"name": "small_cnn", "width": 8}), s.train.spec)
    plain = Performance(channels_last=False)
    seen = []

    class Look(Hook):
        def transform(self, state, batch):
            seen.append((state.perf, batch.x.is_contiguous()))
            return batch

    recipe = PerturbBatch([Perturbation(LinfBall(0.1), steps=1)])
    fit(model, s.train, TrainConfig(epochs=1, batch_size=32), [recipe, Look()], progress=False,
        perf=plain)  # fmt: skip
    assert seen and all(p is plain and contiguous for p, contiguous in seen)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert not conv.weight.is_contiguous(memory_format=torch.channels_last)
