"""Reports from a results database: the papers' layouts, CSV, figures and one HTML page."""

from __future__ import annotations

import csv
import io
from dataclasses import replace

import pytest

from backdoorlab.errors import ConfigError
from backdoorlab.records.metrics import Metrics
from backdoorlab.records.store import COLUMNS, ResultStore
from backdoorlab.report import report
from backdoorlab.report.cells import sweep_cells


def _grid(**options) -> dict:
    """A grid entry: attacks down, defenses across, against no defense."""
    return {"kind": "grid", "rows": "attack", "columns": "defense", "baseline": "none", **options}


SPEC = {
    "name": "toy",
    "title": "Toy table",
    "axes": {
        "attack": {"badnets": {}, "blended": {}},
        "defense": {"none": {}, "cat": {}, "aft": {}},
        "eps": {"defense.eps": [0.1, 0.2]},
    },
    "reports": {
        "t": _grid(
            where={"eps": 0.1}, paper={"badnets": {"none": [90.0, 100.0], "cat": [80.0, 4.0]}}
        ),
        "f": {"kind": "lines", "x": "defense.eps", "panels": "attack", "lines": "defense"},
        "c": {"kind": "curve", "lines": "attack", "where": {"defense": "aft"}},
    },
}
NUMBERS = {  # (attack, defense) -> (acc, asr) at eps 0.1; eps 0.2 is 1 ACC point lower
    ("badnets", "none"): (98.0, 100.0),
    ("badnets", "cat"): (95.0, 2.0),
    ("badnets", "aft"): (97.0, 5.0),
    ("blended", "none"): (97.0, 99.0),
    ("blended", "cat"): (93.0, 1.0),
}


def _db(tmp_path):
    store = ResultStore(tmp_path / "results.db")
    store.put_sweep("toy", SPEC)
    for i, ((a, d), (acc, asr)) in enumerate(NUMBERS.items()):
        for j, eps in enumerate((0.1, 0.2)):
            metrics = {"acc": acc - j, "asr": asr}
            if d == "aft":
                metrics["aft_curve"] = [
                    {"step": 0, "acc": 98.0, "asr": 100.0},
                    {"step": 5, "acc": acc, "asr": asr},
                ]
            _add(store, "toy", f"{i}{j}", a, d, metrics, {"eps": eps}, {"eps": str(eps)})
    return store.path


def _add(store, sweep, n, attack, defense, metrics, defense_config=None, axes=None) -> None:
    """One finished cell of `sweep` (number `n`) into `store`."""
    config = {"attack": {"name": attack}, "defense": {"name": defense, **(defense_config or {})}}
    row = {c: None for c in COLUMNS}
    row.update(
        run_id=f"r{n}", created="now", name=f"{attack}-{defense}", config_hash=f"h{n}",
        dataset="digits", model="small_cnn", attack=attack, defense=defense, seed=0,
        status="finished", metrics_json=metrics, timings_json={}, versions_json={}, sweep=sweep,
        config_json=config, cell=f"cell{n}" + "0" * 20,
        axes_json={"attack": attack, "defense": defense, **(axes or {})},
    )  # fmt: skip
    store.add(row)


def test_grid_in_the_papers_layout_with_published_numbers_drops_and_csv(tmp_path):
    path, sections = report(_db(tmp_path), tmp_path / "out" / "toy", tables=["t"])
    text = path.read_text()
    assert "| attack | none ACC | none ASR | cat ACC | cat ASR | aft ACC | aft ASR |" in text
    assert "| badnets | 98.00 (90.00) | 100.00 (100.00) | 95.00 (80.00) | 2.00 (4.00) |" in text
    assert "| blended | 97.00 | 99.00 | 93.00 | 1.00 | - | - |" in text
    # Avg. Drop: cat (3+4)/2 ACC and (98+98)/2 ASR; paper over badnets alone: 10 and 96
    assert "| **Avg. Drop** | - | - | 3.50 (10.00) | 98.00 (96.00) | 1.00 | 95.00 |" in text
    assert "Not run yet (or failed): blended/aft." in text
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "toy-t.csv").read_text())))
    assert len(rows) == 6
    cat = next(r for r in rows if r["row"] == "badnets" and r["column"] == "cat")
    assert (cat["acc"], cat["asr"], cat["paper_acc"], cat["paper_asr"]) == (
        "95.0",
        "2.0",
        "80.0",
        "4.0",
    )
    assert [s.id for s in sections] == ["t"]


def test_a_pair_the_sweep_excludes_is_not_reported_missing(tmp_path):
    db = _db(tmp_path)
    ResultStore(db).put_sweep("toy", {**SPEC, "exclude": [{"attack": "blended", "defense": "aft"}]})
    path, _ = report(db, tmp_path / "out" / "toy", tables=["t"])
    text = path.read_text()
    assert "| blended | 97.00 | 99.00 | 93.00 | 1.00 | - | - |" in text
    assert "Not run yet" not in text


def test_figures_are_pngs_and_html_is_one_valid_self_contained_page(tmp_path):
    html5lib = pytest.importorskip("html5lib")
    db = _db(tmp_path)
    (tmp_path / "notes.md").write_text("CAT removes **both** backdoors here.")
    md, sections = report(db, tmp_path / "r" / "toy", notes=tmp_path / "notes.md")
    assert "## Observations\n\nCAT removes **both** backdoors here." in md.read_text()
    for fid in ("f", "c"):
        assert (tmp_path / "r" / f"toy-{fid}.png").read_bytes()[:4] == b"\x89PNG"
    assert "![" in md.read_text()
    page, _ = report(db, tmp_path / "h" / "toy", fmt="html", notes=tmp_path / "notes.md")
    text = page.read_text()
    assert "CAT removes <strong>both</strong> backdoors here." in text  # notes rendered
    html5lib.HTMLParser(strict=True).parse(text)  # raises on any parse error
    assert text.count("data:image/png;base64,") == 2
    assert "http://" not in text and "https://" not in text  # nothing fetched from elsewhere
    assert text.count('<details id="cell-') == 10  # every cell's config, on click
    # each table cell links to its cell's config
    assert '<a href="#cell-cell00' in text and 'id="cell-cell00' in text


def test_a_part_whose_cells_have_not_run_says_so_instead_of_drawing(tmp_path):
    db = _db(tmp_path)
    none = {"where": {"attack": "wanet"}}
    reports = {
        "f": {**SPEC["reports"]["f"], **none},
        "g": {"kind": "grid", "rows": "defense.eps", "columns": "defense.name", **none},
        "r": {"kind": "runs", **none},
        "b": {"kind": "runs", "baseline": {"attack": "wanet", "defense": "none"}},
    }
    ResultStore(db).put_sweep("toy", {**SPEC, "reports": reports})
    path, sections = report(db, tmp_path / "out" / "toy")
    for part in sections[:3]:
        assert part.figures == [] and part.table is None and part.grid is None
        assert part.notes == ["No cell of this part has run yet."]
    assert path.read_text().count("No cell of this part has run yet.") == 3
    assert not (tmp_path / "out" / "toy-f.png").exists()
    # a baseline cell not run yet: the other cells are still reported, without a change column
    assert "Baseline ({'attack': 'wanet', 'defense': 'none'}): not run yet." in sections[3].notes
    assert len(sections[3].table) == 1 + 10 and "ACC - baseline" not in sections[3].table[0]


def test_bad_report_requests_are_one_line_errors(tmp_path):
    db = _db(tmp_path)
    with pytest.raises(ConfigError, match="x not in the sweep's reports"):
        report(db, tables=["x"])
    with pytest.raises(ConfigError, match="f is not a table"):
        report(db, tables=["f"])
    with pytest.raises(ConfigError, match="no results database"):
        report(tmp_path / "none.db")
    with pytest.raises(ConfigError, match="no sweep 'other'"):
        report(db, sweep="other")
    assert not (tmp_path / "report").exists()  # nothing written by a failed request


def test_the_page_renders_in_a_real_browser_and_a_cell_link_opens_its_config(tmp_path):
    """Headless Chromium (where installed) runs the page's script: the cell named in the URL
    fragment is opened, as clicking its table cell does."""
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no Chromium on this machine")
    page, _ = report(_db(tmp_path), tmp_path / "h" / "toy", fmt="html")
    target = "cell-cell00" + "0" * 6  # cell ids are the first 12 characters of its hash
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=2000", "--dump-dom",
    ]  # fmt: skip
    done = subprocess.run(
        [browser, *flags, f"{page.as_uri()}#{target}"], capture_output=True, text=True, timeout=60
    )
    dom = done.stdout
    assert "<table>" in dom and dom.count("<img") == 2, done.stderr[-2000:]
    opened = [line for line in dom.splitlines() if f'id="{target}"' in line]
    assert opened and 'open=""' in opened[0]
    others = [line for line in dom.splitlines() if '<details id="cell-' in line]
    assert sum('open=""' in line for line in others) == 1


def _runs_db(tmp_path, baseline_asr: float | None, keep_poison: bool = False):
    """Three cells with run folders: a baseline and two attacks (one with a trigger grid); with
    `keep_poison` the rows hold the poisoned set's bookkeeping too, as rows written now do."""
    from backdoorlab.records.files import write_json

    store = ResultStore(tmp_path / "results.db")
    spec = {
        "name": "runs",
        "axes": {"attack": {"base": {}, "badnets": {}, "sig": {}}},
        "reports": {"r": {"kind": "runs", "baseline": {"attack": "base"}}},
    }
    store.put_sweep("runs", spec)
    cells = {  # label -> (attack config, poison, metrics)
        "base": ("none", 0, {"acc": 99.0, "asr": baseline_asr, "ra": None}),
        "badnets": ("badnets", 400, {"acc": 98.5, "asr": 100.0, "ra": 0.0}),
        "sig": ("sig", 385, {"acc": 99.25, "asr": 2.0, "ra": 97.0, "flagged": 2}),
    }
    for i, (label, (name, count, metrics)) in enumerate(cells.items()):
        attack = {"name": name, "rate": 0.05, "rate_of": "dataset", "label_mode": "dirty"}
        config = {"attack": {**attack, "control": "data"}, "defense": {"name": "none"}}
        folder = tmp_path / "cells" / f"{label}-{i}"
        folder.mkdir(parents=True)
        poison = {"count": count, "cross": 0, "per_batch": False}
        write_json(folder / "result.json", {"config": config, "poison": poison})
        if name == "badnets":
            (folder / "triggers.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
        row = {c: None for c in COLUMNS}
        row.update(
            run_id=f"r{i}", created="now", name=label, config_hash=f"h{i}", dataset="digits",
            model="small_cnn", attack=name, defense="none", seed=0, status="finished",
            out_dir=str(tmp_path / "moved" / folder.name),  # the sweep folder was moved since
            config_json=config, metrics_json=metrics, timings_json={"train_s": 12.4, "total_s": 20},
            versions_json={}, sweep="runs", cell=f"cell{i}" + "0" * 20, axes_json={"attack": label},
            poison_json=poison if keep_poison else None,
        )  # fmt: skip
        store.add(row)
    return store.path


def test_runs_rows_change_against_the_baseline_poison_counts_times_and_trigger_grids(tmp_path):
    path, [section] = report(_runs_db(tmp_path, None), tmp_path / "out" / "p")
    head, *rows = section.table
    # no baseline ASR: no DER column; SIG's own number (flagged) gets the defense column
    assert head == [
        "cell", "attack", "setting", "ACC", "ACC - baseline", "ASR", "RA", "poisoned", "train s",
        "total s", "defense numbers",
    ]  # fmt: skip
    assert [r[0] for r in rows] == ["badnets", "sig"]  # the baseline is a note, not a row
    bad, sig = rows
    assert bad[2] == "data control, dirty-label, rate 0.05 of dataset"
    assert bad[3:] == ["98.50", "-0.50", "100.00", "0.00", "400", "12", "20", "-"]
    assert sig[3:5] == ["99.25", "+0.25"] and sig[-1] == "flagged 2"
    text = path.read_text()
    assert "Baseline (`base`): ACC 99.00." in text
    assert "| badnets | badnets | data control" in text
    # only the cell with a grid gets one, copied beside the page from its (moved) run folder
    [(caption, png)] = section.figures
    assert png.parent == tmp_path / "out" and png.read_bytes().endswith(b"fake")
    assert f"]({png.name})" in text
    assert list(csv.reader(io.StringIO((tmp_path / "out" / "p-r.csv").read_text())))[0] == head


def test_runs_table_and_trigger_grids_need_no_run_folder_once_written(tmp_path):
    """A page rebuilt from its database alone (the run folders gone) is the same page: the
    setting and poisoned count come from the row, a trigger grid already beside it stays."""
    import shutil

    db = _runs_db(tmp_path, None, keep_poison=True)
    first, _ = report(db, tmp_path / "out" / "p")
    text = first.read_text()
    shutil.rmtree(tmp_path / "cells")
    again, [section] = report(db, tmp_path / "out" / "p")
    assert again.read_text() == text
    bad = section.table[1]
    assert bad[2] == "data control, dirty-label, rate 0.05 of dataset" and bad[7] == "400"
    assert len(section.figures) == 1  # badnets' grid, copied by the first report
    # elsewhere (no grid copied there yet, no run folder): the table still, no figure
    _, [bare] = report(db, tmp_path / "elsewhere" / "p")
    assert bare.table == section.table and not bare.figures


def test_runs_der_against_an_attacked_baseline(tmp_path):
    _, [section] = report(_runs_db(tmp_path, 100.0), tmp_path / "out" / "p")
    head, bad, sig = section.table
    i = head.index("DER")
    # DER = (max(0, dASR) - max(0, dACC) + 1) / 2: badnets (0 - 0.005 + 1)/2, sig (0.98 + 1)/2
    assert bad[i] == "0.497" and sig[i] == "0.990"


def test_where_keeps_any_of_a_list_and_the_grid_shows_only_those_rows(tmp_path):
    spec = {**SPEC, "reports": {"t": {"kind": "grid", "rows": "attack", "columns": "defense",
                                      "where": {"eps": 0.1, "defense": ["none", "cat"],
                                                "attack": ["blended"]}}}}  # fmt: skip
    store = ResultStore(_db(tmp_path))
    store.put_sweep("toy", spec)
    _, [section] = report(store.path, tmp_path / "out" / "toy")
    assert section.grid.rows == ["blended"] and section.grid.columns == ["none", "cat"]
    assert section.grid.cells[("blended", "cat")] == Metrics(acc=93.0, asr=1.0)
    assert not section.grid.missing()


def test_where_takes_wildcards_and_a_key_no_cell_has_is_an_error(tmp_path):
    where = {"attack": "bl*", "defense.eps": "0.1"}
    spec = {**SPEC, "reports": {"t": {"kind": "grid", "rows": "attack", "columns": "defense",
                                      "where": where}}}  # fmt: skip
    store = ResultStore(_db(tmp_path))
    store.put_sweep("toy", spec)
    _, [section] = report(store.path, tmp_path / "out" / "toy")
    assert section.grid.rows == ["blended"]
    assert set(section.grid.cells) == {("blended", "none"), ("blended", "cat")}
    spec["reports"]["t"]["where"] = {"defense.epz": 0.1}
    store.put_sweep("toy", spec)
    with pytest.raises(ConfigError, match="'defense.epz' is neither an axis nor a config key"):
        report(store.path, tmp_path / "out" / "toy")


def test_cells_are_reported_in_the_sweeps_order_whichever_finished_first(tmp_path):
    store = ResultStore(_db(tmp_path))
    keys = [r["cell"] for r in store.rows(sweep="toy")]
    store.put_sweep("toy", {**SPEC, "cells": keys[::-1]})  # as if a --reverse start ran them
    rows = sweep_cells(store, "toy", keys[::-1])
    assert [r.key for r in rows] == keys[::-1]


def test_the_page_says_how_many_cpu_threads_its_cells_ran_with(tmp_path):
    from backdoorlab.report.cells import Row
    from backdoorlab.report.page import threads_line

    def row(threads):
        return Row("k", {}, {"performance": {"threads": threads}}, Metrics(acc=1.0))

    assert threads_line([row(1), row(1)]).startswith("Cells ran with 1 CPU thread each (")
    assert threads_line([row(2), row(1)]).startswith("Cells ran with 1 or 2 CPU threads each (cel")
    assert threads_line([Row("k", {}, {}, Metrics())]) == threads_line([]) == ""
    path, _ = report(_db(tmp_path), tmp_path / "out" / "toy", tables=["t"])
    assert "CPU thread" not in path.read_text()  # the toy cells record no thread count
    # the CPU each cell recorded is named; cells from before it was recorded name none
    on = [replace(row(1), versions={"cpu": c}) for c in ("AMD EPYC", "Intel Xeon", "AMD EPYC")]
    assert threads_line(on).endswith(" They ran on: AMD EPYC; Intel Xeon.")
    assert "ran on" not in threads_line([row(1)])


def test_every_run_records_the_cpu_it_ran_on():
    from backdoorlab.records.record import cpu_name, versions

    assert versions()["cpu"] == cpu_name() and cpu_name().strip() == cpu_name() != ""


def test_a_grid_over_repeated_cells_shows_mean_and_spread(tmp_path):
    """`over: AXIS` averages the cells that differ only on that axis (seeds, typically)."""
    db = _db(tmp_path)
    over = {**SPEC["reports"]["t"], "over": "eps"}
    del over["where"]
    ResultStore(db).put_sweep("toy", {**SPEC, "reports": {"t": over}})
    path, _ = report(db, tmp_path / "out" / "toy", tables=["t"])
    text = path.read_text()
    # badnets/none: ACC 98 and 97 -> 97.50 +- 0.71 (sample sd), ASR 100 both -> +- 0.00
    assert "| badnets | 97.50 ± 0.71 (90.00) | 100.00 ± 0.00 (100.00) |" in text
    assert "mean ± sample standard deviation over the `eps` axis (2 repeats)" in text
    assert "| **Avg. Drop** | - | - | 3.50 (10.00) |" in text  # on the means
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "toy-t.csv").read_text())))
    cat = next(r for r in rows if r["row"] == "badnets" and r["column"] == "cat")
    assert (cat["acc"], cat["acc_sd"], cat["n"]) == ("94.5", "0.7071", "2")
    del over["over"]  # without it, two cells at one place are an error that names the option
    ResultStore(db).put_sweep("toy", {**SPEC, "reports": {"t": over}})
    with pytest.raises(ConfigError, match="average them with `over: AXIS`"):
        report(db, tmp_path / "out" / "toy", tables=["t"])


def test_a_cell_run_over_fewer_seeds_is_compared_with_the_baseline_of_its_own_seeds(tmp_path):
    """Gao VII photos: no defense over three seeds, the other defenses over one; a defense's
    Avg. Drop and DER compare it with the no-defense cell of that seed, not the mean of three."""
    db = _db(tmp_path)
    store = ResultStore(db)
    # blended x aft ran at eps 0.2 only, where blended x none has ACC 96 (97 at eps 0.1)
    _add(store, "toy", "90", "blended", "aft", {"acc": 90.0, "asr": 3.0}, {"eps": 0.2},
         {"eps": "0.2"})  # fmt: skip
    over = {**SPEC["reports"]["t"], "over": "eps"}
    del over["where"]
    store.put_sweep("toy", {**SPEC, "reports": {"t": over}})
    path, _ = report(db, tmp_path / "out" / "toy", tables=["t"])
    text = path.read_text()
    # aft: badnets (97.5 - 96.5, 100 - 5) over both eps, blended (96 - 90, 99 - 3) at eps 0.2
    # alone: mean (3.50, 95.50); against blended's mean over both eps ACC would read 3.75
    assert "| **Avg. Drop** | - | - | 3.50 (10.00) | 98.00 (96.00) | 3.50 | 95.50 |" in text
    assert "compare a cell run over fewer `eps` values than the none column with the none" in text
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "toy-t.csv").read_text())))
    aft = next(r for r in rows if r["row"] == "blended" and r["column"] == "aft")
    # DER = (max(0, 99 - 3) - max(0, 96 - 90) + 100) / 200 = 0.95 (the mean ACC 96.5 gives 0.9475)
    assert (aft["n"], aft["der"]) == ("1", "0.95")
    cat = next(r for r in rows if r["row"] == "blended" and r["column"] == "cat")
    assert cat["der"] == str(round((98 - 4 + 100) / 200, 4))  # both seeds: the whole baseline


def test_closest_keeps_per_row_the_ratio_whose_acc_is_nearest_the_reference(tmp_path):
    """Gao's Table VII FP: ratios searched, the one with the ACC closest to CAT's shown."""
    spec = {
        "name": "fp",
        "axes": {
            "attack": {"badnets": {}, "blended": {}},
            "defense": {"none": {}, "cat": {}, "fp-10": {}, "fp-50": {}, "fp-90": {}},
        },
        "reports": {
            "t": _grid(closest={"label": "fp", "among": "fp-*", "to": "cat", "after": "none"})
        },
    }
    acc = {  # attack -> defense -> ACC; CAT at 80 and 90: fp-50 then fp-10 is closest
        "badnets": {"none": 98, "fp-10": 97, "fp-50": 82, "fp-90": 40, "cat": 80},
        "blended": {"none": 97, "fp-10": 91, "fp-50": 60, "fp-90": 30, "cat": 90},
    }
    store = ResultStore(tmp_path / "results.db")
    store.put_sweep("fp", spec)
    for i, (a, d) in enumerate((x, y) for x in acc for y in acc[x]):
        _add(store, "fp", f"{i:02d}", a, d, {"acc": acc[a][d], "asr": 50.0})
    path, _ = report(store.path, tmp_path / "out" / "fp", tables=["t"])
    text = path.read_text()
    assert "| attack | none ACC | none ASR | fp ACC | fp ASR | cat ACC | cat ASR |" in text
    assert "| badnets | 98.00 | 50.00 | 82.00 | 50.00 | 80.00 | 50.00 |" in text
    assert "| blended | 97.00 | 50.00 | 91.00 | 50.00 | 90.00 | 50.00 |" in text
    assert (
        "badnets fp-50 (ACC 82.00 against 80.00); blended fp-10 (ACC 91.00 against 90.00)" in text
    )
    spec["reports"]["t"]["closest"] = {"among": "fp-*"}
    store.put_sweep("fp", spec)
    with pytest.raises(ConfigError, match="closest needs label, among and to"):
        report(store.path, tmp_path / "out" / "fp", tables=["t"])


def test_a_closest_column_whose_searched_columns_are_all_excluded_is_not_missing(tmp_path):
    spec = {
        "name": "fp",
        "axes": {
            "attack": {"badnets": {}, "sig": {}},
            "defense": {"none": {}, "cat": {}, "fp-10": {}, "fp-50": {}},
        },
        "exclude": [{"attack": ["sig"], "defense": ["fp-10", "fp-50"]}],  # cat is left to run
        "reports": {
            "t": _grid(closest={"label": "fp", "among": "fp-*", "to": "cat", "after": "none"})
        },
    }
    store = ResultStore(tmp_path / "results.db")
    store.put_sweep("fp", spec)
    cells = [("badnets", d) for d in ("none", "cat", "fp-10", "fp-50")] + [("sig", "none")]
    for i, (a, d) in enumerate(cells):
        _add(store, "fp", f"{i:02d}", a, d, {"acc": 90.0 + i, "asr": 50.0})
    path, _ = report(store.path, tmp_path / "out" / "fp", tables=["t"])
    assert "Not run yet (or failed): sig/cat." in path.read_text()  # not sig/fp
