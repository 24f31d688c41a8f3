"""Issue 26's first acceptance item over seeds and CPU thread counts: the SGD LeNet of
tests/byo/foreign_mnist.py:sgd_lenet (the test suite's case is seed 0 at two threads), trained
at each seed and thread count, then repaired by `backdoorlab.repair(model, clean)` at its
defaults. The true trigger is used only to measure ASR. A thread count changes the order of
float sums, so the trained model, the references and the scan's score move with it. `--twins`
repairs each model's benign twin too (the same script and images, nothing stamped): the repair
issue asks that a benign model lose at most 1 point of ACC. `--nc-epochs N` gives the plan's
unlearning step N epochs instead of auto's default. `--page-from LOG` writes the page again from
the rows a run printed (LOG holds its output) instead of measuring.

    .venv/bin/python -m scripts.sgd_lenet_acceptance [--mnist ../shared/data/mnist]
        [--seeds 5] [--threads 1 2] [--twins] [--nc-epochs N]
        [--doc docs/examples/sgd-lenet-acceptance.md] [--page-from LOG]

(run from the repository's root; two to three minutes per row on an Intel Xeon core shared
with other work, twins less: a model and its twin share their references).
"""

from __future__ import annotations

import argparse
import ast
import tempfile
from pathlib import Path

import torch

import backdoorlab
from backdoorlab.assess.repair import UNLEARN_EPOCHS
from backdoorlab.defenses.nc import NCConfig
from tests.byo.foreign_mnist import LENET_TARGET as TARGET
from tests.byo.foreign_mnist import sgd_lenet

REPO = Path(__file__).resolve().parents[1]
DOC = "docs/examples/sgd-lenet-acceptance.md"


def measure(
    mnist: Path, seed: int, threads: int, poisoned: bool, cache: Path, nc_epochs: int | None = None
) -> dict:
    """Train the model (or its benign twin) at `seed` on `threads` threads and repair it at the
    defaults (the unlearning step at `nc_epochs` where given), its scan's references kept in
    `cache`."""
    plan_options = None if nc_epochs is None else {"nc": {"epochs": nc_epochs}}
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        case = sgd_lenet(mnist, seed, poisoned)
        _, r = backdoorlab.repair(case["model"], case["clean"], test=case["test"], cache=cache,
                                  plan_options=plan_options, **case["trigger"])  # fmt: skip
    finally:
        torch.set_num_threads(saved)
    b, a = r.before, r.after
    passed = (
        b["asr"] >= 90 and a["asr"] <= 10 and b["acc"] - a["acc"] <= 5
        and r.scan_before["target"] == TARGET and not r.still_flagged
    ) if poisoned else b["acc"] - a["acc"] <= 1  # fmt: skip
    return {
        "seed": seed, "threads": threads, "poisoned": poisoned, "acc_before": b["acc"],
        "asr_before": b["asr"],
        "score": r.scan_before["score"], "threshold": r.scan_before["threshold"],
        "target": r.scan_before["target"], "steps": [s["defense"] for s in r.steps],
        "acc_after": a["acc"], "asr_after": a["asr"], "still_flagged": r.still_flagged,
        "passed": passed, "nc_epochs": UNLEARN_EPOCHS if nc_epochs is None else nc_epochs,
    }  # fmt: skip


def page(rows: list[dict], command: str, nc_epochs: int | None = None) -> str:
    """The measurements as a Markdown page (the unlearning step at `nc_epochs` where given)."""
    twins = [r for r in rows if not r.get("poisoned", True)]
    rows = [r for r in rows if r.get("poisoned", True)]
    passed = sum(r["passed"] for r in rows)
    lines = [
        "# The SGD LeNet's default repair over seeds and thread counts",
        "",
        f"Written by `{command}` (torch {torch.__version__}, CPU: {_cpu()}).",
        "",
        "Issue 26 asks that a LeNet trained by a plain PyTorch script with SGD (momentum) and a "
        "patch trigger be repaired by `backdoorlab.repair(model, clean)` at its defaults to ASR "
        "<= 10 at an ACC drop <= 5 points, the rescan clearing it. The test suite checks one "
        "such model (seed 0, two threads). Here the same script trains it at other seeds and "
        "thread counts: a row passes when the backdoor planted (ASR >= 90 before), the scan "
        "flags class 3, the repair reaches ASR <= 10 at an ACC drop <= 5 points (2,000 held-out "
        "images) and the rescan clears it.",
        *(
            ["", f"The unlearning step ran auto's default, {UNLEARN_EPOCHS} epochs."]
            if nc_epochs is None
            else [
                "",
                f"**The unlearning step ran {nc_epochs} epochs here** (`--nc-epochs "
                f"{nc_epochs}`: `plan_options={{'nc': {{'epochs': {nc_epochs}}}}}`). auto's "
                f"default is {UNLEARN_EPOCHS} since 2026-12-07, chosen on the development zoos "
                "(docs/results/repair-dev-nc10.md); before, a run without `--nc-epochs` ran "
                f"nc's registered {NCConfig.model_fields['epochs'].default}.",
            ]
        ),
        "",
        "| seed | threads | ACC before | ASR before | scan score (threshold) | flagged class "
        "| repair steps | ACC after | ASR after | rescan | passes |",
        "|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---|",
        *(_row(r, f"{r['asr_after']:.2f}") for r in rows),
        "",
        f"Passes: {passed} of {len(rows)} rows.",
    ]
    for t in sorted({r["threads"] for r in rows}):
        at = [r for r in rows if r["threads"] == t]
        lines.append(f"At {t} thread(s): {sum(r['passed'] for r in at)} of {len(at)}.")
    repaired = [r for r in rows if r["steps"]]
    if repaired:
        cleared = [r for r in repaired if not r["still_flagged"]]
        lines += [
            "",
            f"The scan flagged {len(repaired)} of {len(rows)} models; repaired, they kept ASR "
            f"{_span([r['asr_after'] for r in repaired])} at ACC drops of "
            f"{_span([r['acc_before'] - r['acc_after'] for r in repaired])} points, and the "
            f"rescan cleared {len(cleared)} of them, "
            f"{sum(r['asr_after'] > 10 for r in cleared)} with ASR still above 10.",
        ]
    missed = [r for r in rows if r["target"] is None]
    if missed:
        lines += [
            "",
            "Where the scan finds nothing the default repair leaves the model unchanged, "
            "backdoor and all (scores "
            + ", ".join(f"{r['score']:.2f}" for r in missed)
            + f" against thresholds {_span([r['threshold'] for r in missed])}).",
        ]
    if twins:
        lines += ["", *twins_section(twins, rows)]
    return "\n".join(lines) + "\n"


def twins_section(twins: list[dict], infected: list[dict]) -> list[str]:
    """The benign twins, repaired at the defaults: what the repair costs a clean model, and
    whether the scan's scores separate them from the `infected` models."""
    flagged = [r for r in twins if r["steps"]]
    lines = [
        "## The benign twins",
        "",
        "Each model's benign twin: the same script on the same images, no square stamped "
        "(`sgd_lenet(mnist, seed, poisoned=False)`), repaired as the models above. The repair "
        "issue asks that a benign model lose at most 1 point of ACC (the scan finds nothing and "
        "the model is left as it is). ASR is the true square's on the twin.",
        "",
        "| seed | threads | ACC before | ASR before | scan score (threshold) | flagged class "
        "| repair steps | ACC after | ACC cost | rescan | passes |",
        "|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---|",
        *(_row(r, f"{r['acc_before'] - r['acc_after']:.2f}") for r in twins),
        "",
        f"Passes: {sum(r['passed'] for r in twins)} of {len(twins)} twins. The scan flagged "
        f"{len(flagged)} of them",
    ]
    if flagged:
        classes = sorted({r["target"] for r in flagged})
        where = (f"all at class {classes[0]}" if len(classes) == 1 and len(flagged) > 1
                 else f"at class{'es' if len(classes) > 1 else ''} "
                 + ", ".join(map(str, classes)))  # fmt: skip
        lines[-1] += (
            f" ({where}), and the repair cost them "
            f"{_span([r['acc_before'] - r['acc_after'] for r in flagged])} points of ACC."
        )
    else:
        lines[-1] += "."
    if infected:
        high = max(twins, key=lambda r: r["score"])
        low = min(infected, key=lambda r: r["score"])
        above = sum(t["score"] >= low["score"] for t in twins)
        lines[-1] += (
            f" The highest twin score is {high['score']:.2f} (seed {high['seed']}, "
            f"{high['threads']} thread(s)); the lowest infected one {low['score']:.2f} (seed "
            f"{low['seed']}, {low['threads']} thread(s)); {above} of {len(twins)} twins score "
            "at or above it."
        )
    return lines


def _row(r: dict, after: str) -> str:
    """One table row: the model, its scan and repair, `after` (ASR, or a twin's ACC cost), and
    whether it passes."""
    return (
        f"| {r['seed']} | {r['threads']} | {r['acc_before']:.2f} | {r['asr_before']:.2f} "
        f"| {r['score']:.2f} ({r['threshold']:.2f}) "
        f"| {'none' if r['target'] is None else r['target']} "
        f"| {', '.join(r['steps']) or 'none (left unchanged)'} | {r['acc_after']:.2f} "
        f"| {after} | {'still flagged' if r['still_flagged'] else 'clear'} "
        f"| {'yes' if r['passed'] else '**no**'} |"
    )


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _span(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    if lo == hi:
        return f"{lo:.2f}"
    return f"{lo:.2f} to {hi:.2f}" if lo < 0 else f"{lo:.2f}-{hi:.2f}"  # "-0.10-1.75" misreads


LOG_LIMIT = 1 << 20  # a run's output is a few kilobytes


def printed_rows(log: Path) -> list[dict]:
    """The rows a run printed, one dict literal per line, read back (never evaluated as code)."""
    if not log.is_file():
        raise ValueError(f"no file {log}")
    if log.stat().st_size > LOG_LIMIT:
        raise ValueError(f"{log} is over {LOG_LIMIT} bytes, larger than a run prints")
    rows = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{'seed'"):
            try:
                rows.append(ast.literal_eval(line))
            except (ValueError, SyntaxError):
                raise ValueError(f"{log}: a row that does not read: {line[:60]}") from None
    if not rows:
        raise ValueError(f"{log} holds no rows")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--seeds", type=int, default=5, help="train at seeds 0..N-1")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--twins", action="store_true", help="repair each benign twin too")
    parser.add_argument(
        "--nc-epochs",
        type=int,
        help=f"the unlearning step's epochs (default: auto's, {UNLEARN_EPOCHS})",
    )
    parser.add_argument("--doc", help=f"write the page here (e.g. {DOC})")
    parser.add_argument("--page-from", type=Path, help="the rows a run printed: write its page")
    args = parser.parse_args()
    if (
        args.seeds < 1
        or any(t < 1 for t in args.threads)
        or (args.nc_epochs is not None and args.nc_epochs < 1)
    ):
        parser.error("--seeds, --threads and --nc-epochs must be positive")
    want = [(p, s, t) for p in ((True, False) if args.twins else (True,))
            for s in range(args.seeds) for t in args.threads]  # fmt: skip
    if args.page_from is not None:
        try:
            rows = printed_rows(args.page_from)
        except ValueError as exc:
            parser.error(f"--page-from: {exc}")
        got = [(r["poisoned"], r["seed"], r["threads"]) for r in rows]
        epochs = UNLEARN_EPOCHS if args.nc_epochs is None else args.nc_epochs
        ran = {r["nc_epochs"] for r in rows if "nc_epochs" in r}  # older runs did not print it
        if ran - {epochs}:
            parser.error(f"--page-from: its rows unlearned for {sorted(ran)} epochs, not {epochs}")
        if got != want:
            parser.error(f"--page-from: its rows are not those of --seeds {args.seeds} "
                         f"--threads {' '.join(map(str, args.threads))}"
                         f"{' --twins' if args.twins else ''}")  # fmt: skip
    elif not (Path(args.mnist) / "t10k-images-idx3-ubyte.gz").is_file():
        parser.error(f"--mnist: no t10k-images-idx3-ubyte.gz in {args.mnist}")
    else:
        rows = []
        # a model and its twin share the defender's images, so the same references
        with tempfile.TemporaryDirectory() as caches:
            for poisoned, seed, t in want:
                cache = Path(caches) / f"{seed}-{t}"
                rows.append(measure(Path(args.mnist), seed, t, poisoned, cache, args.nc_epochs))
                print(rows[-1], flush=True)
    command = (
        f"python -m scripts.sgd_lenet_acceptance --seeds {args.seeds} --threads "
        + " ".join(map(str, args.threads))
        + (" --twins" if args.twins else "")
        + (f" --nc-epochs {args.nc_epochs}" if args.nc_epochs else "")
        + (f" --doc {args.doc}" if args.doc else "")
    )
    text = page(rows, command, args.nc_epochs)
    print(text)
    if args.doc:
        Path(args.doc).write_text(text)


if __name__ == "__main__":
    main()
