"""Experiments: validated configs, the runner, sweeps, the stage cache, the results store."""

from backdoorlab.experiment.config import ExperimentConfig, load_config
from backdoorlab.experiment.prepare import prepare, resolve_device
from backdoorlab.experiment.runner import RunResult, load_model, run
from backdoorlab.experiment.sweep import sweep
from backdoorlab.experiment.triggers import plot_triggers
from backdoorlab.records.store import ResultStore

__all__ = [
    "ExperimentConfig",
    "ResultStore",
    "RunResult",
    "load_config",
    "load_model",
    "plot_triggers",
    "prepare",
    "resolve_device",
    "run",
    "sweep",
]
