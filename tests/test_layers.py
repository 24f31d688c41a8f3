"""The house rules of docs/architecture.md: imports point down the layers, byo does not reach
into the runner, detectors import no defense, and nothing below the front doors imports the
package root."""

from __future__ import annotations

import ast
from pathlib import Path

import backdoorlab

SRC = Path(backdoorlab.__file__).parent
# top to bottom; a module may import its own layer and any layer below it
LAYERS = [
    "cli",
    "byo",
    "analysis",
    "report",
    "experiment",
    "assess",
    "defenses",
    "detectors",
    "attacks",
    "perturb",
    "train",
    "metrics",
    "models",
    "data",
]
# the floor every layer may use: errors, limits, paths, registries, schemas, plots, records, hash
BASE = {
    "errors", "limits", "paths", "registry", "config_base", "plotting", "version", "seeds",
    "records", "fingerprint",
}  # fmt: skip
FRONT = {"__init__", "__main__", "cli"}


def _layer(module: str) -> str:
    """`backdoorlab.x.y` -> `x` (a package or a top-level module)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<root>"


def _imports() -> list[tuple[str, str, int]]:
    """(importing module's layer-path, imported backdoorlab module, line) for every import."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        here = "backdoorlab." + ".".join(rel.parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] if node.module != "backdoorlab" else ["backdoorlab"]
                found += [(here, n, node.lineno) for n in names if n.startswith("backdoorlab")]
            elif isinstance(node, ast.Import):
                found += [
                    (here, a.name, node.lineno)
                    for a in node.names
                    if a.name.split(".")[0] == "backdoorlab"
                ]
    return found


def _where(here: str) -> str:
    return here.removeprefix("backdoorlab.").replace(".", "/") + ".py"


def test_every_module_belongs_to_a_layer():
    layers = {_layer(h) for h, _, _ in _imports()} | {p.stem for p in SRC.glob("*.py")}
    unknown = layers - set(LAYERS) - BASE - FRONT - {"<root>"}
    assert not unknown, f"add {sorted(unknown)} to LAYERS or BASE in this test and the page"


def test_imports_point_down():
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = []
    for here, there, line in _imports():
        src, dst = _layer(here), _layer(there)
        if src in FRONT or dst in BASE:
            continue
        if src in BASE and dst not in BASE:
            upward.append(f"{_where(here)}:{line} imports {there} (the floor imports no layer)")
        elif src in rank and dst in rank and rank[dst] < rank[src]:
            upward.append(f"{_where(here)}:{line} imports {there}")
    assert not upward, "\n".join(upward)


def test_nothing_below_the_front_doors_imports_the_package_root():
    offenders = [
        f"{_where(h)}:{line}"
        for h, there, line in _imports()
        if there == "backdoorlab" and _layer(h) not in FRONT
    ]
    assert not offenders, offenders


def test_detectors_import_no_defense_and_byo_no_orchestration():
    offenders = []
    for here, there, line in _imports():
        if _layer(here) == "detectors" and _layer(there) == "defenses":
            offenders.append(f"{_where(here)}:{line} imports {there}")
        orchestration = ("runner", "sweep", "executors")
        if (
            _layer(here) == "byo"
            and there.startswith("backdoorlab.experiment.")
            and (there.rsplit(".", 1)[1] in orchestration)
        ):
            offenders.append(f"{_where(here)}:{line} imports {there}")
    assert not offenders, "\n".join(offenders)
