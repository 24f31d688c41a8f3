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


def test_the_acceptance_page_counts_what_passed_per_thread_count():
    """scripts/sgd_lenet_acceptance.py's page: one row per seed and thread count, a missed scan
    shown as the model left unchanged, and the counts of rows that pass."""
    from scripts.sgd_lenet_acceptance import page

    row = {"seed": 0, "threads": 1, "acc_before": 94.0, "asr_before": 98.0, "score": 8.5,
           "threshold": 10.0, "target": None, "steps": [], "acc_after": 94.0,
           "asr_after": 98.0, "still_flagged": False, "passed": False}  # fmt: skip
    ok = {**row, "threads": 2, "score": 11.0, "target": 3, "steps": ["nc"], "acc_after": 92.6,
          "asr_after": 1.8, "passed": True}  # fmt: skip
    text = page([row, ok], "cmd")
    assert "| 0 | 1 | 94.00 | 98.00 | 8.50 (10.00) | none | none (left unchanged) |" in text
    assert "| 0 | 2 | 94.00 | 98.00 | 11.00 (10.00) | 3 | nc | 92.60 | 1.80 | clear | yes |" in text
    assert "Passes: 1 of 2 rows." in text
    assert "At 1 thread(s): 0 of 1." in text and "At 2 thread(s): 1 of 1." in text
    assert "scores 8.50 against thresholds 10.00" in text
    assert "The scan flagged 1 of 2 models; repaired, they kept ASR 1.80 at ACC drops of" in text
    assert "rescan cleared 1 of them, 0 with ASR still above 10." in text


def test_the_acceptance_page_shows_what_the_repair_costs_each_benign_twin():
    """A twin passes when the repair costs it at most a point of ACC; a flagged twin's class and
    cost are named."""
    from scripts.sgd_lenet_acceptance import page

    twin = {"seed": 1, "threads": 2, "poisoned": False, "acc_before": 95.0, "asr_before": 0.5,
            "score": 14.0, "threshold": 10.0, "target": 5, "steps": ["nc"], "acc_after": 91.9,
            "asr_after": 0.4, "still_flagged": False, "passed": False}  # fmt: skip
    quiet = {**twin, "seed": 2, "score": 6.5, "target": None, "steps": [], "acc_after": 95.0,
             "passed": True}  # fmt: skip
    text = page([twin, quiet], "cmd")
    assert "## The benign twins" in text and "Passes: 0 of 0 rows." in text
    assert "| 14.00 (10.00) | 5 | nc | 91.90 | 3.10 | clear | **no** |" in text
    assert "| 6.50 (10.00) | none | none (left unchanged) | 95.00 | 0.00 | clear | yes |" in text
    assert "Passes: 1 of 2 twins. The scan flagged 1 of them (at class 5)" in text
    assert "and the repair cost them 3.10 points of ACC." in text
    infected = {**twin, "poisoned": True, "score": 12.0, "target": 3, "asr_before": 98.0}
    text = page([infected, twin, {**twin, "seed": 3}, quiet], "cmd")
    assert "(all at class 5), and the repair cost them 3.10 points of ACC." in text
    assert "The highest twin score is 14.00 (seed 1, 2 thread(s)); the lowest infected one " in text
    assert "12.00 (seed 1, 2 thread(s)); 2 of 3 twins score at or above it." in text


def test_a_span_with_a_negative_end_reads_as_a_range():
    """An ACC 'drop' can be negative (the repair raised ACC): "-0.10 to 1.75", not "-0.10-1.75"."""
    from scripts.sgd_lenet_acceptance import _span

    assert _span([1.75, -0.1]) == "-0.10 to 1.75"
    assert _span([3.1, 8.15, 4.0]) == "3.10-8.15" and _span([2.0, 2.0]) == "2.00"


def test_the_byo_example_loads_the_users_script_from_where_it_lives():
    """scripts/byo_mnist.py loads the foreign script from its file (it is not in the package);
    it pointed at tests/experiment/ after the script had moved to tests/byo/."""
    from scripts import byo_mnist

    module = byo_mnist._foreign()
    assert module.TARGET == foreign_mnist.TARGET
    assert callable(module.build) and callable(module.make)
    assert (module.MEAN, module.STD) == (foreign_mnist.MEAN, foreign_mnist.STD)


def test_a_page_is_written_again_from_the_rows_a_run_printed(tmp_path, monkeypatch):
    """--page-from reads the rows back as literals (never runs them) and refuses a file that
    is too large or holds none."""
    from scripts import sgd_lenet_acceptance as acc

    row = {"seed": 0, "threads": 2, "poisoned": True, "passed": True}
    log = tmp_path / "run.log"
    log.write_text(f"{row}\nsome other output\n{ {**row, 'seed': 1} }\n")
    assert [r["seed"] for r in acc.printed_rows(log)] == [0, 1]
    log.write_text("{'seed': __import__('os').getcwd()}\n")
    with pytest.raises(ValueError, match="does not read"):
        acc.printed_rows(log)
    log.write_text("nothing here\n")
    with pytest.raises(ValueError, match="no rows"):
        acc.printed_rows(log)
    monkeypatch.setattr(acc, "LOG_LIMIT", 8)
    log.write_text(f"{row}\n")
    with pytest.raises(ValueError, match="over 8 bytes"):
        acc.printed_rows(log)
