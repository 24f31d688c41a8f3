"""Sweeps: one row per finished cell whatever the interruptions; Ray gives the local numbers."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backdoorlab.errors import ConfigError
from backdoorlab.experiment.sweep import sweep
from backdoorlab.records.store import ResultStore

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "sweeps" / "digits-smoke.yaml"


def _cells(db: Path) -> list[str]:
    """The cells a running sweep has recorded so far (none while it is still creating its
    database: the file can exist a moment before its table does)."""
    if not db.is_file():
        return []
    try:
        with sqlite3.connect(db) as con:
            return [r[0] for r in con.execute("SELECT cell FROM runs")]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "backdoorlab.cli", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _smoke(tmp_path: Path) -> Path:
    """digits-smoke at 6 epochs (its cells take seconds, not tens of seconds); started with
    --cpus 1, as a second thread beside the other xdist worker would oversubscribe 2 cores."""
    import yaml

    spec = yaml.safe_load(SMOKE.read_text())
    spec["base"] = str(SMOKE.parent / spec["base"])
    spec["set"].update({"train.epochs": 6})
    spec["axes"]["defense"]["at"]["defense.steps"] = 2
    path = tmp_path / "digits-smoke.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.slow
def test_digits_smoke_survives_sigkill_and_a_third_start_trains_nothing(tmp_path):
    out = tmp_path / "smoke"
    db = out / "results.db"
    smoke = _smoke(tmp_path)
    first = _cli("sweep", str(smoke), "--out", str(out), "--quiet", "--cpus", "1")
    deadline = time.monotonic() + 300
    while len(_cells(db)) < 2 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # while the third cell trains (or is being written)
    first.wait()
    before = _cells(db)
    assert 2 <= len(before) < 6, "the kill hit nothing"

    second = _cli("sweep", str(smoke), "--out", str(out), "--quiet", "--cpus", "1")
    text = second.communicate(timeout=600)[0]
    assert second.returncode == 0, text
    assert f"{len(before)} already finished, {6 - len(before)} to run" in text
    after = _cells(db)
    assert len(after) == 6 and len(set(after)) == 6 and set(before) <= set(after)
    cells = sorted(p.name for p in (out / "cells").iterdir() if not p.name.endswith(".lock"))
    assert len(cells) == 6, cells  # no temp folder of the killed start is left behind
    for name in cells:
        record = json.loads((out / "cells" / name / "result.json").read_text())
        assert 0 <= record["metrics"]["acc"] <= 100
        assert (out / "cells" / name / "model.safetensors").stat().st_size > 0
    rows = ResultStore(db).rows()
    assert {tuple(json.loads(r["axes_json"]).values()) for r in rows} == {
        (a, d) for a in ("badnets", "blended") for d in ("none", "ft", "at")
    }

    third = _cli("sweep", str(smoke), "--out", str(out), "--quiet", "--cpus", "1")
    text = third.communicate(timeout=120)[0]
    assert third.returncode == 0 and "6 already finished, 0 to run" in text, text
    assert _cells(db) == after


def _small(tiny_config) -> dict:
    return {
        "name": "small",
        "base": tiny_config,
        "resources": {"cpus": 1},
        "axes": {
            "attack": {
                "badnets": {},
                "blended": {"attack.name": "blended", "attack.patch_size": None},
            },
            "defense": {"none": {}, "ft": {"defense.name": "ft", "defense.epochs": 1}},
        },
    }


def test_a_failed_cell_is_reported_and_the_rest_are_recorded(tiny_config, tmp_path):
    spec = _small(tiny_config)
    spec["axes"]["defense"]["diverging"] = {"train.lr": 1e30}  # fails: non-finite loss
    lines: list[str] = []
    r = sweep(spec, tmp_path, progress=False, say=lines.append)
    assert r.ran == 4 and set(r.failures) == {
        "attack=badnets,defense=diverging",
        "attack=blended,defense=diverging",
    }
    assert len(_cells(tmp_path / "results.db")) == 4
    assert any("FAILED" in line for line in lines)
    again = sweep(spec, tmp_path, progress=False, say=lines.append)
    assert again.skipped == 4 and again.ran == 0 and len(again.failures) == 2


def test_a_cell_another_start_finished_meanwhile_is_skipped(tiny_config, tmp_path):
    spec = _small(tiny_config)
    first = sweep(spec, tmp_path / "a", progress=False, say=lambda _: None)
    rows = ResultStore(tmp_path / "a" / "results.db").rows()
    other = ResultStore(tmp_path / "b" / "results.db")
    last = max(rows, key=lambda r: r["id"])  # the cell a reverse start would run first

    def meanwhile(line: str) -> None:  # called once the start has listed its cells
        if "to run" in line:
            other.add({**last, "axes_json": json.loads(last["axes_json"])})

    second = sweep(spec, tmp_path / "b", progress=False, say=meanwhile, reverse=True)
    assert first.ran == 4 and second.ran == 3 and second.skipped == 1
    assert sorted(_cells(tmp_path / "b" / "results.db")) == sorted(r["cell"] for r in rows)


def test_a_start_merges_the_cells_another_folder_finished(tiny_config, tmp_path):
    spec = _small(tiny_config)
    spec["axes"]["defense"] = {"none": {}}  # two cells
    first = sweep(spec, tmp_path / "a", progress=False, say=lambda _: None)
    noise = ResultStore(tmp_path / "other.db")  # another sweep's row is never copied
    row = ResultStore(tmp_path / "a" / "results.db").rows()[0]
    noise.add({**row, "run_id": "x", "sweep": "another", "cell": "elsewhere"})
    lines: list[str] = []
    merged = sweep(spec, tmp_path / "b", progress=False, say=lines.append,
                   merge=[tmp_path / "a" / "results.db", tmp_path / "other.db"])  # fmt: skip
    assert first.ran == 2 and merged.ran == 0 and merged.skipped == 2
    assert lines[:2] == [
        f"merged 2 finished cells of small from {tmp_path / 'a' / 'results.db'}",
        f"merged 0 finished cells of small from {tmp_path / 'other.db'}",
    ]
    assert sorted(_cells(tmp_path / "b" / "results.db")) == sorted(
        _cells(tmp_path / "a" / "results.db")
    )
    with pytest.raises(ConfigError, match="`merge` .*: no such results database"):
        sweep(spec, tmp_path / "c", progress=False, merge=[tmp_path / "none.db"])


def test_a_slice_runs_only_its_cells_and_the_rest_follow(tiny_config, tmp_path):
    spec = _small(tiny_config)
    said: list[str] = []
    part = sweep(spec, tmp_path, progress=False, say=said.append, only={"defense": ["none"]})
    plain = {c.key for c in part.cells if c.axes["defense"] == "none"}
    assert part.ran == 2 and set(_cells(tmp_path / "results.db")) == plain
    # the cells outside the slice are neither finished nor to run here: the tally says so
    assert (
        part.skipped == 0 and "0 already finished, 2 to run (2 more outside the slice)" in said[0]
    )
    rest = sweep(spec, tmp_path, progress=False, say=lambda _: None)
    assert rest.skipped == 2 and rest.ran == 2
    with pytest.raises(ConfigError, match="axis 'defense' has no label nc"):
        sweep(spec, tmp_path, progress=False, only={"defense": ["nc"]})
    with pytest.raises(ConfigError, match="no axis 'model'"):
        sweep(spec, tmp_path, progress=False, only={"model": ["x"]})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster():
    pytest.importorskip("ray")
    ray_bin = Path(sys.executable).parent / "ray"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    # under load a head node now and then times out in its startup; one more try on a fresh port
    # (after stopping what the first left) tells that apart from a Ray that cannot start here
    for _ in range(2):
        port = _free_port()
        start = [
            str(ray_bin), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
            "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
        ]  # fmt: skip
        done = subprocess.run(start, capture_output=True, text=True, env=env, timeout=180)
        if done.returncode == 0:
            break
        subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    import builtins

    own_print = builtins.print  # ray.init replaces it; later tests in this worker get it back
    try:
        yield f"127.0.0.1:{port}"
    finally:
        import ray

        ray.shutdown()
        builtins.print = own_print
        subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, timeout=120)


# one Ray cluster per xdist worker would stop the other's (`ray stop --force` in the fixture
# kills every Ray process on the machine, the other worker's driver too): both tests run in the
# serial part, in one process. `xdist_group` is not relied on: with pytest 9.2 and pytest-xdist
# 3.8 `--dist loadgroup` does not group (xdist renames `item._nodeid`, which pytest 9.2 no
# longer reads: pytest-xdist#1386), and seed 2796 ran them on two workers at once
@pytest.mark.slow
@pytest.mark.serial
def test_the_ray_executor_gives_the_local_numbers(tiny_config, tmp_path, ray_cluster):
    spec = _small(tiny_config)
    local = sweep(spec, tmp_path / "local", progress=False, say=lambda _: None)
    remote = sweep(
        spec, tmp_path / "ray", executor="ray", address=ray_cluster, progress=False, say=print
    )
    assert local.ran == remote.ran == 4 and not remote.failures

    def metrics(root: Path) -> dict:
        return {
            r["cell"]: (json.loads(r["metrics_json"]), r["acc"], r["asr"])
            for r in ResultStore(root / "results.db").rows()
        }

    a, b = metrics(tmp_path / "local"), metrics(tmp_path / "ray")
    assert a.keys() == b.keys() and len(a) == 4
    for cell in a:
        ma, mb = a[cell][0], b[cell][0]
        assert (ma["acc"], ma["asr"], ma["ra"]) == (mb["acc"], mb["asr"], mb["ra"])


@pytest.mark.slow
@pytest.mark.serial
def test_a_ray_task_whose_worker_dies_is_retried(tiny_config, tmp_path, ray_cluster):
    from backdoorlab.experiment.executors import RayExecutor, Task, run_cell

    marker = tmp_path / "died-once"

    def dies_first(task, cwd):
        import os
        from pathlib import Path

        if not Path(marker).exists():
            Path(marker).touch()
            os._exit(1)  # the worker process dies, as a killed or crashed node would
        return run_cell(task, cwd)

    cfg = {**tiny_config, "train": {**tiny_config["train"], "epochs": 1}}
    task = Task(cfg, str(tmp_path / "cache"), 1, 0)
    (out,) = RayExecutor(ray_cluster, retries=2, body=dies_first).map([task])
    assert out.error is None and "result.json" in out.files and marker.exists()

    marker.unlink()
    (out,) = RayExecutor(ray_cluster, retries=0, body=dies_first).map([task])
    assert out.files is None and out.error  # no retry left: reported, not raised


def _one_epoch(tiny_config) -> dict:
    return {**tiny_config, "train": {**tiny_config["train"], "epochs": 1, "eval_every": 0}}


def _rows_match_folders(out: Path) -> list[dict]:
    rows = ResultStore(out / "results.db").rows()
    for r in rows:
        folder = Path(r["out_dir"])
        assert folder.parent == (out / "cells").resolve()
        assert json.loads((folder / "result.json").read_text())["run_id"] == r["run_id"]
    return rows


def test_labels_that_slug_alike_get_folders_of_their_own(tiny_config, tmp_path):
    labels = ["x y", "x+y", ".", ".."]
    spec = {
        "name": "labels",
        "base": _one_epoch(tiny_config),
        "axes": {"seed": {label: {"seed": i} for i, label in enumerate(labels)}},
    }
    (tmp_path / "cells").mkdir()
    (tmp_path / "cells" / "sibling").mkdir()  # not the sweep's: must survive
    r = sweep(spec, tmp_path, progress=False, say=lambda _: None)
    assert r.ran == 4 and not r.failures
    rows = _rows_match_folders(tmp_path)
    assert len({r["out_dir"] for r in rows}) == 4
    assert (tmp_path / "cells" / "sibling").is_dir()


def test_two_starts_on_one_folder_end_with_one_row_per_cell_matching_its_folder(
    tiny_config, tmp_path
):
    import threading

    spec = {
        "name": "twice",
        "base": _one_epoch(tiny_config),
        "axes": {"seed": {"s0": {"seed": 0}, "s1": {"seed": 1}, "s2": {"seed": 2}}},
    }
    results, errors = {}, []

    def start(name: str, reverse: bool) -> None:
        try:
            results[name] = sweep(
                spec, tmp_path, progress=False, say=lambda _: None, reverse=reverse
            )
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(n, n == "b")) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    rows = _rows_match_folders(tmp_path)
    assert len(rows) == 3 and len({r["cell"] for r in rows}) == 3
    assert results["a"].ran + results["b"].ran == 3
    assert not list((tmp_path / "cells").glob(".*.tmp"))
    assert len([p for p in (tmp_path / "cells").iterdir() if not p.name.startswith(".")]) == 3


def test_a_start_removes_only_temp_folders_whose_owner_is_gone(tiny_config, tmp_path):
    from filelock import FileLock

    spec = {"name": "stale", "base": _one_epoch(tiny_config), "axes": {}}
    cells = tmp_path / "cells"
    cells.mkdir()
    (cells / ".gone.abc123.tmp").mkdir()  # its start was killed
    (cells / ".alive.def456.tmp").mkdir()  # its start is still writing it
    lock = FileLock(cells / ".alive.lock")
    lock.acquire()
    try:
        sweep(spec, tmp_path, progress=False, say=lambda _: None)
        assert not (cells / ".gone.abc123.tmp").exists()
        assert (cells / ".alive.def456.tmp").is_dir()
    finally:
        lock.release()


def test_a_cell_that_cannot_be_written_stops_the_driver_with_one_line(
    tiny_config, tmp_path, monkeypatch
):
    import errno
    import importlib

    sweep_module = importlib.import_module("backdoorlab.experiment.sweep")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sweep_module, "_commit", full)
    spec = {
        "name": "full",
        "base": _one_epoch(tiny_config),
        "axes": {"seed": {"s0": {"seed": 0}, "s1": {"seed": 1}}},
    }
    lines: list[str] = []
    r = sweep(spec, tmp_path, progress=False, say=lines.append)
    assert r.ran == 0 and len(r.failures) == 1 and "No space left" in r.stopped
    assert any("stopping the sweep" in line for line in lines)
    assert ResultStore(tmp_path / "results.db").rows() == []


def test_a_folder_in_the_way_that_is_not_ours_fails_that_cell_only(tiny_config, tmp_path):
    from backdoorlab.experiment.sweep_spec import expand, load_sweep

    spec = {
        "name": "inway",
        "base": _one_epoch(tiny_config),
        "axes": {"seed": {"s0": {"seed": 0}, "s1": {"seed": 1}}},
    }
    first = expand(load_sweep(spec))[0]
    blocked = tmp_path / "cells" / first.slug
    blocked.mkdir(parents=True)
    (blocked / "mine.txt").write_text("keep")
    lines: list[str] = []
    r = sweep(spec, tmp_path, progress=False, say=lines.append)
    assert r.ran == 1 and list(r.failures) == ["seed=s0"] and "refusing" in r.failures["seed=s0"]
    assert (blocked / "mine.txt").read_text() == "keep"
    assert len(_rows_match_folders(tmp_path)) == 1


def test_a_dry_run_prints_every_cells_config_and_writes_nothing(tmp_path, capsys, monkeypatch):
    import json

    from backdoorlab.cli import main

    monkeypatch.chdir(tmp_path)  # the default OUT, runs/<name>, would be made here
    assert main(["sweep", "digits-smoke", "--dry-run"]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.strip().splitlines()]
    assert len(lines) == 6 and captured.err.strip() == "6 cells"  # 2 attacks x 3 defenses
    assert {c["cell"] for c in lines} == {
        f"attack={a},defense={d}" for a in ("badnets", "blended") for d in ("none", "ft", "at")
    }
    ft = next(c["config"] for c in lines if c["cell"] == "attack=blended,defense=ft")
    assert ft["defense"] == {"name": "ft", "epochs": 2, "lr": 0.01, "batch_size": 128,
                             "clean_share": 0.05}  # fmt: skip
    assert ft["attack"]["alpha"] == 0.2 and ft["train"]["epochs"] == 30
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_line_reaches_a_redirected_output_at_once(monkeypatch):
    """A sweep started in the background with its output in a log file shows each cell as it
    ends: its lines are flushed, not left in the buffer until it fills."""
    import io
    import sys

    from backdoorlab.experiment.sweep import print_now

    class Log(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1
            super().flush()

    log = Log()
    monkeypatch.setattr(sys, "stdout", log)
    print_now("[1/2] cell: ACC 99.00")
    assert log.getvalue() == "[1/2] cell: ACC 99.00\n" and log.flushes == 1
