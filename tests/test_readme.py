"""The README's bring-your-own-model example runs as printed (embedded digits, tens of seconds)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(heading: str) -> tuple[str, str]:
    """The first python block under `heading` and the output block after it."""
    text = README.read_text().split(f"## {heading}\n", 1)[1]
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    output = re.search(r"```python\n.*?```\n\n```\n(.*?)```", text, re.S).group(1)
    return code, output


@pytest.mark.slow
@pytest.mark.serial
def test_the_bring_your_own_model_example_prints_what_the_readme_shows(capsys):
    import torch

    code, output = _block("Bring your own model")
    threads = torch.get_num_threads()
    try:  # the example sets 2 threads itself; the suite's own count comes back after it
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out.strip().splitlines()
    shown = output.strip().splitlines()
    assert len(printed) == len(shown)
    # 1: evaluate on the 360 test digits; the counts exactly, the rates within TOLERANCE
    _close(ast.literal_eval(printed[0]), ast.literal_eval(shown[0]))
    # 2, 3: the calibrated verdicts: the infected model's target, nothing in the clean model
    verdict = (
        r"\(score ([0-9.]+), threshold 10\.00, empirical p = [0-9.]+; calibrated by 8 references\)"
    )
    infected = re.fullmatch(r"backdoor suspected: target class 0 " + verdict, printed[1])
    benign = re.fullmatch(r"no backdoor found " + verdict, printed[2])
    assert infected and benign, printed[1:3]
    assert float(infected.group(1)) > 10 > float(benign.group(1))
    # 4: before / after the default repair; 5: the rescan's line on the class the scan flagged
    before, after = ast.literal_eval(printed[3].replace("} {", "}, {"))
    want = ast.literal_eval(shown[3].replace("} {", "}, {"))
    _close(before, want[0])
    _close(after, want[1])
    assert after["asr"] <= 25 and before["asr"] - after["asr"] >= 75  # the repair worked
    rescan = r"repaired by nc: the rescan finds no backdoor \(class 0: z ([-0-9.]+) -> ([-0-9.]+), "
    cleared = re.match(rescan + r"threshold ([0-9.]+)\)", printed[4])
    assert cleared, printed[4]
    z_before, z_after, threshold = map(float, cleared.groups())
    assert z_before == float(infected.group(1)) and z_after <= threshold  # scan and repair agree


# points; NC's search moves with the CPU: the repaired model's ACC on the 360 test digits was
# 93.33 on the AMD EPYC that printed the README and 95.83 on an Intel Xeon (9 images), both at 2
# threads
TOLERANCE = {"acc": 3.0, "asr": 10.0, "ra": 10.0}


def _close(got: dict, want: dict) -> None:
    assert set(got) == set(want), (got, want)
    for k, v in want.items():
        if k in TOLERANCE:
            assert abs(got[k] - v) <= TOLERANCE[k], (k, got, want)
        else:
            assert got[k] == v, (k, got, want)


def test_the_readme_s_own_defense_registers_runs_and_reports_its_findings(tiny_config):
    from backdoorlab.experiment import run

    text = README.read_text().split("`register_defense` work the same way.", 1)[1]
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})  # registers "shrink"
    tiny_config["defense"] = {"name": "shrink", "factor": 0.9}
    r = run(tiny_config, save=False, progress=False, cache=False)
    assert r.metrics.defense == {"clean_images": 13}  # clean_share 5% of 256 training images
    assert r.metrics.before is not None  # measured before the repair, as for a built-in
