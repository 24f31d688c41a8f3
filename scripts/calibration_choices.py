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

from backdoorlab.report.kinds import zoo_members
from backdoorlab.report.settings import Pick, settings_rows
from backdoorlab.report.zoo import PLANTED, Member, split
from scripts.rebuild_pages import kept_cells


def members(zoo: str) -> tuple[list[Member], list[Member], list[Member]]:
    """A kept zoo's benign and infected models as its detect report sorts them, and the attacked
    ones whose attack did not plant (set apart)."""
    found = split(zoo_members({}, kept_cells(zoo)), PLANTED)
    bare = [m.name for group in found[:2] for m in group if "calibrated" not in m.detections]
    if bare:
        raise SystemExit(f"{zoo}: {', '.join(bare[:5])} hold no calibrated scan")
    return found


def choice_table(benign: list[Member], infected: list[Member]) -> tuple[list[str], Pick | None]:
    """The table's rows (Markdown) over every setting, and the rule's pick (None where no
    setting flags no benign model at any floor): report/settings.py on the kept models."""
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
    benign = [m for b, _, _ in kept for m in b]
    infected = [m for _, i, _ in kept for m in i]
    failed = [m.name for _, _, f in kept for m in f]
    left = f"; left out, attack not planted: {', '.join(failed)}" if failed else ""
    print(f"{' + '.join(args.zoos)}: {len(benign) + len(infected)} models ({len(benign)} "
          f"benign, {len(infected)} infected{left})\n")  # fmt: skip
    rows, pick = choice_table(benign, infected)
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
