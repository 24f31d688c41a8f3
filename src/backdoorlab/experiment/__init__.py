"""Experiments: validated configs, the runner, the results store, plots."""

from backdoorlab.experiment.budget_report import budget_report
from backdoorlab.experiment.config import ExperimentConfig, load_config
from backdoorlab.experiment.prepare import prepare, resolve_device
from backdoorlab.experiment.report import report
from backdoorlab.experiment.runner import RunResult, load_model, run
from backdoorlab.experiment.store import ResultStore
from backdoorlab.experiment.sweep import sweep
from backdoorlab.experiment.triggers import plot_triggers

__all__ = [
    "ExperimentConfig",
    "budget_report",
    "ResultStore",
    "RunResult",
    "load_config",
    "load_model",
    "plot_triggers",
    "prepare",
    "report",
    "resolve_device",
    "run",
    "sweep",
]
