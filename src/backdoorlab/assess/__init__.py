"""The assessment layer below both front doors (`experiment`'s runner and `byo`): measure a
model, and repair it and measure again, each with a typed result; the runner's scan and a
user's share one path too (detectors.scan.scan_model)."""

from backdoorlab.assess.repair import RepairOutcome, repair_and_measure

__all__ = ["RepairOutcome", "repair_and_measure"]
