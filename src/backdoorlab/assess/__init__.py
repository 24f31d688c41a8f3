"""The assessment layer below both front doors (`experiment`'s runner and `byo`): repair a model
and measure it again with a typed result, and defense `auto` (scan, repair what it flags,
rescan); the runner's scan and a user's share one path too (detectors.scan.scan_model)."""

from backdoorlab.assess.repair import (
    AutoConfig,
    AutoRepair,
    RepairOutcome,
    auto_repair,
    repair_and_measure,
)

__all__ = ["AutoConfig", "AutoRepair", "RepairOutcome", "auto_repair", "repair_and_measure"]
