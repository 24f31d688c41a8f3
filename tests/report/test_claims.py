"""The claims ledger: numbers read from the pages' CSV and JSON files, verdicts counted, bad
references one clear error; the repository's ledger is what its claims file writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from backdoorlab.errors import ConfigError
from backdoorlab.report import claims_page

REPO = Path(__file__).resolve().parents[2]
GRID = (
    "row,column,acc,asr,paper_acc,paper_asr,der\n"
    "badnets,none,99.05,100.0,,,\nbadnets,cat,96.7,0.5,,,\n"
)


def pages(tmp_path: Path, claims: list[dict]) -> Path:
    (tmp_path / "t7.md").write_text("# page\n")
    (tmp_path / "t7-table7.csv").write_text(GRID)
    (tmp_path / "zoo-detection.csv").write_text("detector,attack,AUROC\nmm-bd,all attacks,0.951\n")
    (tmp_path / "t7-vs.csv").write_text(
        "row,compared,metric,p,reading\nbadnets,a - b,ASR,0.002,a lower\n"
    )
    (tmp_path / "t7-labels").mkdir()
    (tmp_path / "t7-labels" / "a.json").write_text(json.dumps({"infected": {"share": 98.214}}))
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({"claims": claims}))
    return path


def claim(verdict="reproduced", cells=None, **kw):
    cells = [{"table": "t7-table7", "row": "badnets", "column": "cat"}] if cells is None else cells
    return {"paper": "Gao", "where": "Table VII", "claim": "CAT works", "verdict": verdict,
            "cells": cells, "why": "because", **kw}  # fmt: skip


def test_the_ledger_reads_every_number_from_the_pages_files(tmp_path):
    cells = [
        {"table": "t7-table7", "row": "badnets", "column": "cat"},
        {"table": "zoo-detection", "match": {"detector": "mm-bd"}, "show": ["AUROC"]},
        {"json": "t7-labels/a.json", "show": ["infected.share"]},
        {"table": "t7-vs", "match": {"row": "badnets"}, "show": ["p", "reading"]},
    ]
    src = pages(tmp_path, [claim(cells=cells), claim("not testable at CPU scale", cells=[])])
    text = claims_page(src, tmp_path / "claims").read_text()
    assert "[t7](t7.md) badnets x cat: ACC 96.70, ASR 0.50" in text
    assert "zoo-detection mm-bd: AUROC 0.95" in text  # no page of that name: the CSV's name
    assert "[t7](t7.md) labels/a: infected.share 98.21" in text
    assert "[t7](t7.md) badnets: p 0.002, reading a lower" in text  # a paired p: 3 decimals
    assert "| reproduced | 1 |" in text and "| not testable at CPU scale | 1 |" in text
    html = claims_page(src, tmp_path / "claims", "html").read_text()
    assert 'href="t7.html"' in html and "<table>" in html


@pytest.mark.parametrize(
    "bad,words",
    [
        (claim("maybe"), ["verdict"]),
        (claim(cells=[]), ["needs the cells"]),
        (claim(cells=[{"table": "t7-table7", "row": "lc", "column": "cat"}]), ["matches 0 rows"]),
        (claim(cells=[{"table": "t7-table7", "match": {"row": "badnets"}}]), ["matches 2 rows"]),
        (claim(cells=[{"table": "../t7-table7", "row": "a", "column": "b"}]), ["cannot be a file"]),
        (claim(cells=[{"table": "nope", "row": "a", "column": "b"}]), ["no CSV"]),
        (claim(cells=[{"table": "t7-table7", "row": "badnets"}]), ["row and column together"]),
        (claim(cells=[{"json": "t7-labels/a.json", "show": ["infected.x"]}]), ["no infected.x"]),
    ],
)
def test_a_bad_claim_is_one_clear_error_and_writes_nothing(tmp_path, bad, words):
    src = pages(tmp_path, [bad])
    with pytest.raises(ConfigError) as err:
        claims_page(src, tmp_path / "claims")
    assert all(w in str(err.value) for w in words) and "\n" not in str(err.value)
    assert not (tmp_path / "claims.md").exists()


def test_the_repository_ledger_is_what_its_claims_file_writes(tmp_path):
    source = REPO / "docs" / "results" / "claims.yaml"
    ledger = yaml.safe_load(source.read_text())
    assert len(ledger["claims"]) >= 12
    assert {c["paper"] for c in ledger["claims"]} == {"Gao et al.", "Mu et al."}
    copy = tmp_path / "claims.yaml"
    copy.write_text(source.read_text().replace("pages: .", f"pages: {source.parent}"))
    written = claims_page(copy, tmp_path / "claims").read_text()
    published = (source.parent / "claims.md").read_text()
    assert written.replace(copy.as_posix(), "docs/results/claims.yaml") == published
