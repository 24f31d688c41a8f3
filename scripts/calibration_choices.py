"""How the calibrated scan's settings are chosen: every evidence (raw values, within-model index,
class-profile residual), every subset of the probes and a floor under the threshold, scored on
the development zoos from the values their runs kept (the suspect's and each reference's
per-class values, in docs/results/data/<zoo>.db.gz), so nothing is rerun; then the rule below
picks one setting. The scoring and the rule are backdoorlab.report.settings (a page's
`settings` report shows one zoo's table); this script pools several zoos.

    .venv/bin/python -m scripts.calibration_choices [ZOO ...]
        (default: detection-dev detection-dev-2, the two development zoos)

The rule (configs/results/detection-dev-2.yaml, written down before that zoo ran): keep the
settings that flag no benign model at some floor; among them take the highest target accuracy,
then the most infected models flagged at the lowest floor that flags no benign model, then the
fewest probes, then the evidence in the order profile, values, index. The floor is that lowest
floor. Run `make results-pages PAGES=<zoo>` first for a zoo whose database is not kept yet.

    .venv/bin/python -m scripts.calibration_choices --test detection-mnist
        the same table on a test zoo, as evidence of how the scan moves with its settings there
        (what the rule would pick on it is printed as such: choosing from it tunes on the test zoo)

As on the pages, an attacked model counts as infected where its attack planted (ASR >= 50);
the others are left out and counted.
"""

from __future__ import annotations

import argparse
import json
import sqlite3

from backdoorlab.report.settings import Pick, settings_rows
from backdoorlab.report.zoo import Member
from scripts.rebuild_pages import kept_database

PLANTED = 50.0  # the detect report's default: below this ASR an attack did not plant


def members(zoo: str) -> tuple[list[dict], list[str]]:
    """Each model of a kept zoo (its name, infected or not, target, and kept detections), and
    the names of the attacked models whose attack did not plant."""
    with kept_database(zoo) as db:
        con = sqlite3.connect(db)
        rows = con.execute("SELECT name, config_json, metrics_json, asr FROM runs").fetchall()
        con.close()
    out: dict[str, dict] = {}
    failed = []
    for name, config, metrics, asr in rows:
        found = json.loads(metrics).get("detect", {})
        if "calibrated" not in found:
            continue  # a run from before the zoo was calibrated
        if name in out:
            raise SystemExit(f"{zoo}: two calibrated runs named {name}")
        attack = json.loads(config)["attack"]
        infected = attack["name"] != "none"
        if infected and (asr or 0.0) < PLANTED:
            failed.append(name)
            continue
        out[name] = {
            "name": name,
            "infected": infected,
            "target": attack.get("target") if infected else None,
            "found": found,
        }
    return list(out.values()), failed


def choice_table(zoo: list[dict]) -> tuple[list[str], Pick | None]:
    """The table's rows (Markdown) over every setting, and the rule's pick (None where no
    setting flags no benign model at any floor): report/settings.py on the kept models."""
    as_members = [
        Member(m["name"], "infected" if m["infected"] else None, m["target"], None, m["found"])
        for m in zoo
    ]
    benign = [m for m in as_members if m.group is None]
    infected = [m for m in as_members if m.group is not None]
    table, pick = settings_rows(benign, infected)
    rule = "| --- | --- | ---: | ---: |" + " ---: |" * (len(table[0]) - 4)
    rows = ["| " + " | ".join(table[0]) + " |", rule]
    rows += ["| " + " | ".join(r) + " |" for r in table[1:]]
    return rows, pick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("zoos", nargs="*", default=["detection-dev", "detection-dev-2"])
    parser.add_argument(
        "--test", action="store_true", help="the zoos are test zoos: evidence, not a choice"
    )
    args = parser.parse_args()
    kept = [members(z) for z in args.zoos]
    zoo = [m for found, _ in kept for m in found]
    failed = [name for _, names in kept for name in names]
    benign = sum(not m["infected"] for m in zoo)
    left = f"; left out, attack not planted: {', '.join(failed)}" if failed else ""
    print(f"{' + '.join(args.zoos)}: {len(zoo)} models ({benign} benign, "
          f"{len(zoo) - benign} infected{left})\n")  # fmt: skip
    rows, pick = choice_table(zoo)
    print("\n".join(rows))
    if pick is None:
        print("\nNo setting flags no benign model at any floor.")
        return
    if args.test:
        print(
            f"\nOn these test zoos the rule would pick: {pick}. Evidence only: a setting chosen "
            "here is tuned on the test zoo."
        )
    else:
        print(f"\nThe rule picks: {pick}.")


if __name__ == "__main__":
    main()
