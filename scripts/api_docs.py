"""The API reference from the docstrings: build/api/index.html (make docs). Exit 1 on any pdoc
warning, so CI keeps the reference building cleanly.

    .venv/bin/python scripts/api_docs.py [--out build/api]
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import warnings
from pathlib import Path

import pdoc
import pdoc.extract

import backdoorlab


def modules() -> list[str]:
    """Every module of the package once: pdoc walks a package's submodules itself unless the
    package's `__all__` hides them, so a module is named only where no earlier spec reaches it."""
    names: list[str] = []
    covered: set[str] = set()
    found = ["backdoorlab"] + [
        i.name for i in pkgutil.walk_packages(backdoorlab.__path__, "backdoorlab.")
    ]
    for name in found:
        parent, _, leaf = name.rpartition(".")
        if name in covered or leaf == "__main__":
            continue
        if parent and leaf in getattr(importlib.import_module(parent), "__all__", ()):
            continue
        names.append(name)
        covered.update(pdoc.extract.walk_specs([name]))
    return names


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="build/api")
    args = p.parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*modules(), output_directory=Path(args.out))
    ours = [w for w in caught if Path(pdoc.__file__).parent in Path(w.filename).parents]
    for w in ours:
        print(f"pdoc: {w.message}", file=sys.stderr)
    if ours:
        return 1
    print(f"API reference: {Path(args.out) / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
