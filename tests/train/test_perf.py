"""Performance switches: scoped, layout-only (same numbers), and CUDA-only autocast."""

from __future__ import annotations

import contextlib

import torch

from backdoorlab.models import MODELS, build_model
from backdoorlab.train.perf import Performance, autocast, current, performance, prepare_model


def test_switches_are_scoped_to_the_block():
    assert current() == Performance()
    with performance(Performance(channels_last=False, amp="bf16")) as p:
        assert current() is p and not current().channels_last
    assert current() == Performance()


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
    with performance(Performance(channels_last=False)):
        fresh = build_model(MODELS.validate({"name": "small_cnn", "width": 8}), s.train.spec)
        prepare_model(fresh)
        conv = next(m for m in fresh.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous()


def test_bf16_autocast_applies_on_cuda_only():
    with performance(Performance(amp="bf16")):
        assert isinstance(autocast(torch.device("cpu")), contextlib.nullcontext)
        if torch.cuda.is_available():
            assert isinstance(autocast(torch.device("cuda")), torch.autocast)


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


def test_switches_of_two_threads_do_not_leak_into_each_other():
    import threading

    seen, entered = {}, threading.Barrier(2)

    def work(name: str, settings: Performance) -> None:
        with performance(settings):
            entered.wait()  # both blocks are open at once
            seen[name] = current()
        seen[name + " after"] = current()

    a, b = Performance(threads=1), Performance(channels_last=False)
    threads = [threading.Thread(target=work, args=(n, s)) for n, s in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen["a"] == a and seen["b"] == b
    assert seen["a after"] == seen["b after"] == Performance() == current()
