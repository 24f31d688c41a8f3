"""Errors in the caller's language: the library names its parameters, the CLI its flags."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import backdoorlab
from backdoorlab.cli import build_parser, flags_of, in_flags, main
from backdoorlab.data.base import InputSpec

SRC = Path(backdoorlab.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z]")


def _error_strings(tree: ast.AST):
    """String pieces of every raise statement and every parameter default (a `what` label)."""
    for node in ast.walk(tree):
        roots: list[ast.AST] = []
        if isinstance(node, ast.Raise) and node.exc is not None:
            roots.append(node.exc)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            roots.extend(d for d in (*node.args.defaults, *node.args.kw_defaults) if d)
        for root in roots:
            for sub in ast.walk(root):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                    yield sub.lineno, sub.value


def test_no_library_error_names_a_command_line_flag():
    offenders = [
        f"{path.relative_to(SRC)}:{line}: {text!r}"
        for path in sorted(SRC.rglob("*.py"))
        if path.name != "cli.py"
        for line, text in _error_strings(ast.parse(path.read_text()))
        if FLAG.search(text)
    ]
    assert not offenders, "\n".join(offenders)


def test_in_flags_turns_parameters_into_the_commands_flags():
    flags = flags_of(build_parser(), "repair")
    assert flags["weights"] == "--model" and flags["overrides"] == "--set"
    assert in_flags("`weights` /m.pt: cannot read", flags) == "--model /m.pt: cannot read"
    assert (
        in_flags("pass `overwrite=True` to replace it", flags) == "pass --overwrite to replace it"
    )
    assert in_flags("give both `mean` and `std`", flags) == "give both --mean and --std"
    assert in_flags("`key_map=x`: unknown", flags) == "--key-map x: unknown"
    # a name the command has no flag for stays as the API wrote it
    assert in_flags("`runs`: holds sweeps", flags) == "`runs`: holds sweeps"
    assert (
        in_flags("`runs`: holds sweeps", flags_of(build_parser(), "report"))
        == "--run: holds sweeps"
    )


def test_the_same_error_in_python_and_on_the_command_line(tmp_path, capsys):
    missing = tmp_path / "none.pt"
    with pytest.raises(backdoorlab.ConfigError, match=r"^`weights` .*none\.pt: cannot read"):
        spec = InputSpec(1, (8, 8), 10, (0.5,), (0.5,))
        backdoorlab.load_foreign(missing, "small_cnn", spec)
    argv = ["evaluate", "--model", str(missing), "--arch", "small_cnn", "--data", "digits"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--model" in err and "none.pt: cannot read" in err and "`" not in err


def test_a_bad_scan_or_repair_setting_names_the_parameter_and_on_the_command_line_its_flag():
    import torch

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    data = (torch.rand(40, 1, 8, 8), torch.arange(40) % 10)
    with pytest.raises(backdoorlab.ConfigError, match=r"^scan: `evidence`: Input should be"):
        backdoorlab.scan(model, data, evidence="bogus", references=3)
    with pytest.raises(backdoorlab.ConfigError, match=r"^scan: `fpr`: .*\(got 2\.0\)"):
        backdoorlab.scan(model, data, fpr=2.0, references=3)
    with pytest.raises(backdoorlab.ConfigError, match=r"^repair: `rounds`: .*\(got 0\)"):
        backdoorlab.repair(model, data, rounds=0)
    assert in_flags("scan: `fpr`: no", flags_of(build_parser(), "scan")) == "scan: --fpr: no"
    assert in_flags("repair: `rounds`: no", flags_of(build_parser(), "repair")) == (
        "repair: --rounds: no"
    )
