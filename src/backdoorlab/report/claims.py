"""The claims ledger: each headline claim of the papers, its verdict here, and the cells behind it
with their numbers read from the results pages' CSV files (docs/results/claims.md).

A claims file (YAML) holds the claims; every number the ledger prints comes from a page's CSV:

    pages: .                      # the folder of the results pages, relative to this file
    claims:
      - paper: Gao et al.
        where: Sec. III-C, Fig. 2
        claim: L_inf AT removes whole-image triggers (Blended)
        verdict: reproduced
        cells:
          - {table: gao2023-fig2-cpu-grid, row: linf-4, column: blended}
          - {table: detection-mnist-detection, match: {detector: calibrated}, show: [AUROC]}
        why: one line

`row` and `column` select a grid's cell (shown as ACC and ASR); `match` selects any CSV row by
its columns and `show` names the columns printed. A selection must match exactly one row.
`{json: FOLDER/FILE.json, show: [infected.target_share]}` prints values of an analysis' JSON
file by dotted key.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from backdoorlab.config_base import format_validation_error
from backdoorlab.errors import ConfigError
from backdoorlab.limits import MAX_JSON_BYTES, read_file
from backdoorlab.paths import check_name, inside
from backdoorlab.records.files import write_text

VERDICTS = (
    "reproduced",
    "partly",
    "not reproduced",
    "contradicted",
    "not testable at CPU scale",
)


class CellRef(BaseModel):
    """One row of a results page's CSV: a grid cell (row, column) or any row (`match`); or
    values of an analysis' JSON file."""

    model_config = ConfigDict(extra="forbid")

    table: str | None = Field(None, description="the CSV's name without .csv, in the pages folder")
    json_file: str | None = Field(None, alias="json", description="FOLDER/FILE.json there")
    row: str | None = None
    column: str | None = None
    match: dict[str, str] = Field(default_factory=dict)
    show: list[str] | None = Field(None, description="columns printed (grids: acc and asr)")

    @model_validator(mode="after")
    def _selects(self) -> CellRef:
        if (self.table is None) == (self.json_file is None):
            raise ValueError("give a table or a json file")
        if self.json_file is not None:
            if not self.show or self.row is not None or self.match:
                raise ValueError("a json file takes `show` (dotted keys) and nothing else")
            return self
        if (self.row is None) != (self.column is None):
            raise ValueError("give row and column together")
        if self.row is None and not self.match:
            raise ValueError("select a row: row and column, or match")
        return self

    def selector(self) -> dict[str, str]:
        grid = {} if self.row is None else {"row": self.row, "column": self.column}
        return {**grid, **self.match}


class Claim(BaseModel):
    """A paper's claim, the verdict here, the cells behind it and one line on why."""

    model_config = ConfigDict(extra="forbid")

    paper: str
    where: str = Field(description="the paper's section, table or figure")
    claim: str
    verdict: Literal[VERDICTS]  # type: ignore[valid-type]
    cells: list[CellRef] = Field(default_factory=list)
    why: str

    @model_validator(mode="after")
    def _evidence(self) -> Claim:
        if not self.cells and self.verdict != "not testable at CPU scale":
            raise ValueError(f"a claim judged {self.verdict!r} needs the cells behind it")
        return self


class Ledger(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = "Claims ledger: the papers' headline claims, judged by this project's results"
    pages: str = "."
    claims: list[Claim]


def read_ledger(path: str | Path) -> Ledger:
    """The claims file at `path`, validated; a bad file is one ConfigError line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"claims file {path} does not exist")
    try:
        raw = yaml.safe_load(read_file(path, MAX_JSON_BYTES, str(path)))
    except yaml.YAMLError as exc:
        raise ConfigError(f"claims file {path}: not YAML ({exc})") from None
    try:
        return Ledger.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"claims file {path}: {format_validation_error(exc)}") from None


def _rows(folder: Path, table: str, cache: dict[str, list[dict[str, str]]]) -> list[dict]:
    if table not in cache:
        check_name(table, "`table`")
        path = inside(folder, f"{table}.csv")
        if not path.is_file():
            raise ConfigError(f"claims: table {table} has no CSV in {folder}")
        text = read_file(path, MAX_JSON_BYTES, str(path)).decode()
        cache[table] = list(csv.DictReader(text.splitlines()))
    return cache[table]


def _page_of(folder: Path, table: str) -> str | None:
    """The results page a CSV belongs to: the longest `<page>.md` its name starts with."""
    parts = table.split("-")
    for n in range(len(parts), 0, -1):
        if (folder / f"{'-'.join(parts[:n])}.md").is_file():
            return "-".join(parts[:n])
    return None


def _number(value: str, digits: int = 2) -> str:
    try:
        return f"{float(value):.{digits}f}"
    except ValueError:
        return value


# a paired test's p keeps the three decimals its table prints (p 0.002 is not "p 0.00")
_DIGITS = {"p": 3}


def _json_values(ref: CellRef, folder: Path) -> str:
    """'[page](page.md) file: key v, ...' from an analysis' JSON file."""
    parts = ref.json_file.split("/")
    for part in parts:
        check_name(part, "`json`")
    path = inside(folder, *parts)
    if not path.is_file():
        raise ConfigError(f"claims: {ref.json_file} does not exist in {folder}")
    data = json.loads(read_file(path, MAX_JSON_BYTES, str(path)))
    values = []
    for key in ref.show:
        node = data
        for k in key.split("."):
            if not isinstance(node, dict) or k not in node:
                raise ConfigError(f"claims: {ref.json_file} has no {key}")
            node = node[k]
        values.append(f"{key} {_number(str(node))}")
    page = _page_of(folder, parts[0])
    where = f"[{page}]({page}.md)" if page else parts[0]
    name = "/".join([*parts[:-1], Path(parts[-1]).stem])
    label = name[len(page) + 1 :] if page and name.startswith(f"{page}-") else name
    return f"{where} {label}: {', '.join(values)}"


def resolve(ref: CellRef, folder: Path, cache: dict[str, list[dict[str, str]]]) -> str:
    """'[page](page.md) row x column: ACC a, ASR b' for one cell, read from its CSV."""
    if ref.json_file is not None:
        return _json_values(ref, folder)
    rows = _rows(folder, ref.table, cache)
    want = ref.selector()
    hits = [r for r in rows if all(r.get(k) == v for k, v in want.items())]
    if len(hits) != 1:
        shown = ", ".join(f"{k}={v}" for k, v in want.items())
        raise ConfigError(f"claims: {shown} matches {len(hits)} rows of {ref.table}, not one")
    row = hits[0]
    show = ref.show or (["acc", "asr"] if ref.row is not None else [])
    missing = [c for c in show if c not in row]
    if missing:
        raise ConfigError(f"claims: {ref.table} has no column {missing[0]}")
    label = " x ".join(want.values())
    values = ", ".join(
        f"{c.upper() if c in ('acc', 'asr') else c} {_number(row[c], _DIGITS.get(c, 2))}"
        for c in show
    )
    page = _page_of(folder, ref.table)
    where = f"[{page}]({page}.md)" if page else ref.table
    return f"{where} {label}: {values}" if values else f"{where} {label}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def claims_page(source: str | Path, out: str | Path, fmt: str = "md") -> Path:
    """Write the ledger of the claims file `source` to `out` (.md, or one .html page): a count
    per verdict, then every claim with its verdict, its cells' numbers and why."""
    source = Path(source)
    ledger = read_ledger(source)
    folder = (source.parent / ledger.pages).resolve()
    cache: dict[str, list[dict[str, str]]] = {}
    evidence = [[resolve(ref, folder, cache) for ref in c.cells] for c in ledger.claims]
    counts = Counter(c.verdict for c in ledger.claims)
    lines = [
        f"# {ledger.title}",
        "",
        f"Written by `backdoorlab claims {source.as_posix()}`: every number below is read from "
        "the CSV of the results page it links to.",
        "",
        "| verdict | claims |",
        "| --- | ---: |",
        *(f"| {v} | {counts[v]} |" for v in VERDICTS),
        "",
        "| # | paper | where | claim | verdict | cells | why |",
        "| ---: | --- | --- | --- | --- | --- | --- |",
    ]
    for i, (c, cells) in enumerate(zip(ledger.claims, evidence, strict=True), 1):
        found = "<br>".join(_cell(x) for x in cells) or "-"
        lines.append(
            f"| {i} | {_cell(c.paper)} | {_cell(c.where)} | {_cell(c.claim)} | **{c.verdict}** "
            f"| {found} | {_cell(c.why)} |"
        )
    page = "\n".join(lines) + "\n"
    out = Path(out)
    if fmt == "html":
        import html

        import markdown

        body = markdown.markdown(page.replace(".md)", ".html)"), extensions=["tables"])
        head = '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        title = f"<title>{html.escape(ledger.title)}</title></head><body>"
        text = f"{head}{title}\n{body}\n</body></html>\n"
        target = out.with_suffix(".html")
    elif fmt == "md":
        text, target = page, out.with_suffix(".md")
    else:
        raise ConfigError(f"`fmt` {fmt!r}: md or html")
    write_text(target, text)
    return target
