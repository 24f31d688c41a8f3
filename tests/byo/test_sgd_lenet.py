"""Issue 26's case: a LeNet trained by a plain PyTorch script with SGD, repaired by the default
repair; its own module, so that xdist does not tie it to test_byo's group of tests."""

from __future__ import annotations

import pytest

from tests.byo import foreign_mnist


@pytest.mark.slow
@pytest.mark.serial  # two threads: where it was measured to pass on an Intel Xeon (docstring)
def test_repair_by_default_removes_an_sgd_lenets_backdoor_and_the_rescan_shows_it(mnist_dir):
    """Issue 26's case: AFT alone left this model's backdoor whole (ASR 99.50 after). The
    default repair scans, unlearns the flagged class's reversed trigger and rescans against
    references repaired the same way (scripts/repair_foreign_lenet.py prints the numbers).
    The scan's margin is thin: the example page's 10.87 against the threshold of 10 was measured
    at one thread on an AMD EPYC; on an Intel Xeon the script at one thread trains another
    model, which the scan does not flag (the default repair leaves it as it is), and at two
    threads one it flags at 11.00. Two threads on the EPYC were not measured."""
    import torch

    import backdoorlab

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        case = foreign_mnist.sgd_lenet(mnist_dir)
        _, report = backdoorlab.repair(case["model"], case["clean"], test=case["test"],
                                       **case["trigger"])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    before, after = report.before, report.after
    assert before["asr"] >= 90 and after["asr"] <= 10, (before, after)
    assert before["acc"] - after["acc"] <= 5, (before, after)
    target = foreign_mnist.LENET_TARGET
    assert report.scan_before["infected"] and report.scan_before["target"] == target
    # the recipe's first references stall near chance on this LeNet; those kept learned the task
    # (retried at a lower rate: docs/examples/sgd-lenet-repair.md)
    acc = report.probe_accuracy
    assert min(acc["references"]) >= 0.5 * acc["model"] and any(acc["attempts"])
    assert [s["defense"] for s in report.steps] == ["nc"]
    assert not report.still_flagged and "the rescan finds no backdoor" in report.summary
    assert report.scan_after["class_z"][target] < 0  # the flagged class is now below the refs
    held = report.held_out  # the trigger-free estimate agrees with the true trigger
    assert held["reversed_trigger_asr_before"] >= 90 and held["reversed_trigger_asr_after"] <= 10
    # searched again on the repaired model, class 3's smallest trigger is no longer small
    # (16.3 -> 104.8 measured at two threads; the 4x4 square's own mask is 16)
    assert held["reversed_trigger_unlearned"]
    assert held["reversed_trigger_norm_after"] >= 3 * held["reversed_trigger_norm_before"]
