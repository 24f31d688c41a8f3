"""What a run record measured, typed: ACC/ASR/RA of the final model, the model before a repair,
DER, detections, a repair's trigger-free evidence and a defense's own numbers kept apart."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# the sections of a record's metrics that are not a defense's own numbers
_MEASURED = ("acc", "asr", "ra")
_EVIDENCE = ("scan_before", "scan_after", "steps", "held_out")
_SECTIONS = {*_MEASURED, "der", "infected", "before", "detect", "aft_curve", *_EVIDENCE}


@dataclass(frozen=True)
class Metrics:
    """A record's numbers. `before` is the model a post-training defense started from (with
    `stage`: the stage-cache key it came from and whether it was a hit); `defense` holds a
    defense's own numbers (fp_pruned, nc_norms, abl_precision, ...); a scan record's verdict
    is `verdict`. ACC, ASR and RA are percentages; ASR and RA are None without a backdoor."""

    acc: float | None = None
    asr: float | None = None
    ra: float | None = None
    der: float | None = None
    before: Metrics | None = None
    stage: dict[str, Any] = field(default_factory=dict)
    detect: dict[str, dict[str, Any]] = field(default_factory=dict)
    aft_curve: list[dict[str, Any]] | None = None
    scan_before: dict[str, Any] | None = None
    scan_after: dict[str, Any] | None = None
    steps: list[dict[str, Any]] | None = None
    held_out: dict[str, Any] | None = None
    defense: dict[str, Any] = field(default_factory=dict)
    verdict: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any], kind: str = "run") -> Metrics:
        """The metrics section of a record of `kind`, as written by any version (a user's
        repair wrote the model before it as `before`, a run as `infected.metrics`)."""
        if kind == "scan":
            return cls(verdict=dict(raw))
        infected = raw.get("infected") or {}
        before = infected.get("metrics", raw.get("before"))
        return cls(
            **{k: raw.get(k) for k in (*_MEASURED, "der", "aft_curve", *_EVIDENCE)},
            before=None if before is None else cls.from_dict(before),
            stage={k: v for k, v in infected.items() if k != "metrics"},
            detect=raw.get("detect") or {},
            defense={k: v for k, v in raw.items() if k not in _SECTIONS},
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of a record's metrics (sections this record lacks are left out)."""
        if self.verdict is not None:
            return dict(self.verdict)
        out: dict[str, Any] = {k: getattr(self, k) for k in _MEASURED}
        out.update(self.defense)
        if self.aft_curve is not None:
            out["aft_curve"] = self.aft_curve
        out.update({k: getattr(self, k) for k in _EVIDENCE if getattr(self, k) is not None})
        if self.before is not None:
            out["infected"] = {**self.stage, "metrics": self.before.to_dict()}
            out["der"] = self.der
        if self.detect:
            out["detect"] = self.detect
        return out

    def measured(self) -> dict[str, float | None]:
        """ACC, ASR and RA as `metrics.core.measure` returns them (what `der` takes)."""
        return {k: getattr(self, k) for k in _MEASURED}

    def named(self, name: str) -> Any:
        """A number a report names: acc, asr, ra, der or one of the defense's own (None where
        this record has none)."""
        if name in (*_MEASURED, "der"):
            return getattr(self, name)
        return self.defense.get(name)

    def has(self, name: str) -> bool:
        """Whether `named(name)` is one of this record's numbers."""
        return name in (*_MEASURED, "der") or name in self.defense

    def scalars(self) -> dict[str, Any]:
        """DER and the defense's own scalar numbers, by name (what a runs table lists)."""
        found = {"der": self.der} if self.before is not None else {}
        found.update(self.defense)
        return {
            k: found[k]
            for k in sorted(found)
            if found[k] is not None and not isinstance(found[k], (list, dict))
        }
