"""The third development round's rule (configs/results/detection-dev-3.yaml, written down before
the screen ran): at the floor of 10, the trigger-search screen joins the scan if, on each of the
three development zoos at a repair's 400 images, it flags at least as many infected models as
the probes alone and no more benign ones. Both verdicts come from the same cells: the screen's
as they ran, the probes' alone recalibrated from the values the cells kept.

    .venv/bin/python -m scripts.screen_rule [PAGE ...]
        (default: the three development zoos' screen pages)
"""

from __future__ import annotations

import argparse

from backdoorlab.detectors.scan import CalibrationConfig, recalibrated_detection
from scripts.calibration_choices import members

PAGES = (
    "detection-dev-data-400-steps-screen",
    "detection-dev-2-data-400-steps-screen",
    "detection-dev-3-screen",
)
PROBES = CalibrationConfig(
    detectors=["adv-labels-l2", "mm-bd"], evidence="values", min_threshold=10
)


def verdicts(member) -> tuple[tuple[bool, int | None], tuple[bool, int | None]]:
    """(flagged, class pointed at) of the probes alone and of the probes with the screen."""
    screen = member.detections["calibrated"]
    alone = recalibrated_detection(member.detections, PROBES)

    def top(d: dict) -> int:
        return max(range(len(d["values"])), key=lambda c: d["values"][c])

    return (bool(alone["suspects"]), top(alone)), (bool(screen["suspects"]), top(screen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", default=list(PAGES))
    args = parser.parse_args()
    print("| zoo | benign flagged: probes / with screen | infected flagged: probes / with "
          "screen | targets named: probes / with screen | rule holds |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | --- |")
    holds = []
    changed = []
    for page in args.pages:
        benign, infected, _ = members(page)
        b = [verdicts(m) for m in benign]
        i = [verdicts(m) for m in infected]
        bp, bs = sum(a[0] for a, _ in b), sum(s[0] for _, s in b)
        ip, is_ = sum(a[0] for a, _ in i), sum(s[0] for _, s in i)
        tp = sum(a[1] == m.target for (a, _), m in zip(i, infected, strict=True))
        ts = sum(s[1] == m.target for (_, s), m in zip(i, infected, strict=True))
        ok = is_ >= ip and bs <= bp
        holds.append(ok)
        print(f"| {page} | {bp} / {bs} of {len(b)} | {ip} / {is_} of {len(i)} "
              f"| {tp} / {ts} of {len(i)} | {'yes' if ok else 'no'} |")  # fmt: skip
        for m, (a, s) in zip(benign + infected, b + i, strict=True):
            if a[0] != s[0]:
                changed.append(f"{page}: {m.name} {'flagged' if s[0] else 'cleared'} by the "
                               f"screen (class {s[1]}; target {m.target})")  # fmt: skip
    print()
    print("The screen joins the scan." if all(holds) else "The screen does not join the scan.")
    for line in changed:
        print(f"- {line}")


if __name__ == "__main__":
    main()
