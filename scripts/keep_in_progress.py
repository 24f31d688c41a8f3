"""Keep a running sweep's database so far in docs/results/data/in-progress/<name>.db.gz, so that
its finished cells survive the machine that ran them (a sweep resumes from its database alone;
docs/results/data/in-progress/README.md says how). The copy is taken with SQLite's backup API,
consistent while the sweep writes, and gzipped without a timestamp. With `--without` a page's
published database (docs/results/data/PAGE.db.gz), only the cells it lacks are kept: a new
column of a published sweep costs the repository its own cells, not the page's again (resume
with the published database and `backdoorlab sweep ... --merge` of this one).

    .venv/bin/python -m scripts.keep_in_progress NAME runs/results/NAME/results.db [--without GZ]
"""

from __future__ import annotations

import argparse
import gzip
import sqlite3
import sys
import tempfile
from pathlib import Path

KEPT = Path(__file__).resolve().parents[1] / "docs" / "results" / "data" / "in-progress"


def keep(name: str, db: Path, folder: Path = KEPT, without: Path | None = None) -> tuple[Path, int]:
    """Copy `db` to `folder`/`name`.db.gz, less the runs of the gzipped database `without`; the
    path and the number of finished cells kept."""
    if not name or Path(name).name != name or name.startswith("."):
        raise ValueError(f"name {name!r}: one file name, no folders")
    for f in (db, without):
        if f is not None and not f.is_file():
            raise FileNotFoundError(f"{f}: no such database")
    out = folder / f"{name}.db.gz"
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy.db"
        src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        dst = sqlite3.connect(copy)
        with dst:
            src.backup(dst)
        src.close()
        if without is not None:
            published = Path(tmp) / "published.db"
            published.write_bytes(gzip.decompress(without.read_bytes()))
            old = sqlite3.connect(published)
            ids = [r[0] for r in old.execute("SELECT run_id FROM runs")]
            old.close()
            with dst:
                dst.executemany("DELETE FROM runs WHERE run_id = ?", [(i,) for i in ids])
            dst.execute("VACUUM")
        (finished,) = dst.execute("SELECT COUNT(*) FROM runs WHERE status = 'finished'").fetchone()
        dst.close()
        part = out.with_suffix(".gz.part")
        with open(copy, "rb") as f, open(part, "wb") as raw:
            with gzip.GzipFile("", "wb", 9, raw, mtime=0) as z:
                z.write(f.read())
        part.replace(out)  # never a half-written file under the kept name
    return out, finished


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name")
    p.add_argument("db", type=Path)
    p.add_argument(
        "--without", type=Path, help="a published database (.db.gz) whose runs to leave out"
    )
    args = p.parse_args(argv)
    try:
        out, finished = keep(args.name, args.db, without=args.without)
    except (ValueError, FileNotFoundError, OSError, sqlite3.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{out}: {finished} finished cells")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
