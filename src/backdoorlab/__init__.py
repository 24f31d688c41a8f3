"""backdoorlab: plant backdoors in image classifiers, defend with adversarial training, measure.

import backdoorlab
result = backdoorlab.run("configs/quickstart.yaml", out="runs/quickstart")
result.metrics.asr  # Metrics(acc=..., asr=..., ra=..., ...)
"""

from backdoorlab.analysis import ANALYSES, analyze  # (registers the analysis report kind)
from backdoorlab.attacks import ATTACKS, Attack, AttackConfig, register_attack
from backdoorlab.attacks.user_trigger import Trigger, make_trigger
from backdoorlab.byo import evaluate, repair, scan
from backdoorlab.data import DATASETS, Dataset, DatasetConfig, load_dataset, register_dataset
from backdoorlab.data.user import load_user_data
from backdoorlab.defenses import DEFENSES, Defense, DefenseConfig, register_defense
from backdoorlab.detectors import DETECTORS, register_detector
from backdoorlab.errors import BackdoorlabError, ConfigError, DataError
from backdoorlab.experiment import (
    ExperimentConfig,
    ResultStore,
    RunResult,
    load_config,
    load_model,
    plot_triggers,
    run,
    sweep,
)
from backdoorlab.models import MODELS, Classifier, ModelConfig, build_model, register_model
from backdoorlab.models.foreign import KEY_MAPS, load_foreign
from backdoorlab.report import report
from backdoorlab.version import __version__ as __version__

REGISTRIES = {
    "datasets": DATASETS,
    "models": MODELS,
    "attacks": ATTACKS,
    "defenses": DEFENSES,
    "detectors": DETECTORS,
}


def _threat_model(kind: str, obj: object) -> str:
    """Which threat model a component belongs to: an attack's controls, a defense's stage."""
    if kind == "attacks":
        return f" [control: {', '.join(obj.controls)}]"
    if kind == "defenses":
        stage = "post-training" if obj.post_training else "training-time"
        return " [baseline]" if obj.identity else f" [{stage}]"
    return ""


def list_components() -> dict[str, list[tuple[str, str]]]:
    """Registered (name, summary) pairs per kind: datasets, models, attacks, defenses,
    detectors; attacks name the threat models (controls) they implement, defenses their stage."""
    return {
        kind: [(e.name, e.summary + _threat_model(kind, e.obj)) for e in reg]
        for kind, reg in REGISTRIES.items()
    }


__all__ = [
    "ANALYSES",
    "analyze",
    "ATTACKS",
    "DATASETS",
    "DEFENSES",
    "DETECTORS",
    "KEY_MAPS",
    "Trigger",
    "evaluate",
    "load_foreign",
    "load_user_data",
    "make_trigger",
    "register_detector",
    "repair",
    "scan",
    "MODELS",
    "REGISTRIES",
    "Attack",
    "AttackConfig",
    "BackdoorlabError",
    "Classifier",
    "ConfigError",
    "DataError",
    "Dataset",
    "DatasetConfig",
    "Defense",
    "DefenseConfig",
    "ExperimentConfig",
    "ModelConfig",
    "ResultStore",
    "RunResult",
    "build_model",
    "list_components",
    "load_config",
    "load_dataset",
    "load_model",
    "plot_triggers",
    "register_attack",
    "register_dataset",
    "register_defense",
    "register_model",
    "report",
    "run",
    "sweep",
]
