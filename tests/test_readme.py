"""The README's bring-your-own-model example runs as printed (embedded digits, tens of seconds)."""

from __future__ import annotations

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
    assert printed[1] == shown[1]  # the verdict names the target
    assert "[0]" in printed[2]  # Neural Cleanse flagged it and unlearned
    assert len(printed) == len(shown)
