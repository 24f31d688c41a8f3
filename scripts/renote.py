"""Rewrite the Observations of a results page from its notes file, where the page's database is
not at hand: the section `backdoorlab report --notes` writes last is swapped for the notes in
the Markdown page, and re-rendered the way `report` renders it in the HTML page. Tables,
figures and every number above it stay as the report wrote them.

    .venv/bin/python -m scripts.renote docs/results/gao2023-fig2-cpu [--check]

`--check` only says whether the pages already hold the notes (exit 1 if not). With the database
at hand, `make results-pages PAGES=...` (or `backdoorlab report`) is the way: it rewrites the
whole page, and gives the same bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import markdown

HEAD = "## Observations"
CELLS = "\n<h2>Cells</h2>"


def renoted(page: Path, notes: str) -> tuple[str, str]:
    """(Markdown, HTML) of `page` (a path without suffix) with `notes` as its Observations."""
    md = page.with_suffix(".md").read_text()
    html = page.with_suffix(".html").read_text()
    cut = md.rfind(f"\n{HEAD}\n")
    if cut < 0:
        raise SystemExit(f"{page}.md has no {HEAD} section")
    section = f"{HEAD}\n\n{notes.strip()}\n"
    new_md = md[: cut + 1] + section
    start, end = html.rfind("<h2>Observations</h2>"), html.find(CELLS)
    if start < 0 or end < start:
        raise SystemExit(f"{page}.html has no Observations section before its cells")
    rendered = markdown.markdown(section, extensions=["tables"], output_format="html")
    return new_md, html[:start] + rendered + html[end:]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("page", type=Path, help="docs/results/NAME (without suffix)")
    p.add_argument("--notes", type=Path, help="default docs/results/notes/NAME.md")
    p.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    notes = args.notes or args.page.parent / "notes" / f"{args.page.name}.md"
    md, html = renoted(args.page, notes.read_text())
    same = md == args.page.with_suffix(".md").read_text()
    same = same and html == args.page.with_suffix(".html").read_text()
    if args.check:
        print(f"{args.page}: {'holds its notes' if same else 'differs from its notes'}")
        return 0 if same else 1
    args.page.with_suffix(".md").write_text(md)
    args.page.with_suffix(".html").write_text(html)
    print(f"{args.page}: observations rewritten from {notes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
