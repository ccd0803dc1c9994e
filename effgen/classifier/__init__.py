"""Step-budgeted classifier training: configuration, the training loop, and chapter-level experiments."""
from effgen.classifier.config import MODELS, ClassifierConfig, build_model
from effgen.classifier.experiments import (
    ClassifierRun,
    LrPick,
    claim_verdict,
    combine_verdicts,
    confusion,
    histories,
    pick_lr,
    run_classifier,
    run_folder,
    run_key,
    run_seeds,
    seed_summary,
)
from effgen.classifier.loop import (
    CHECKPOINT_FILE,
    HISTORY_COLUMNS,
    WEIGHTS_FILE,
    TrainResult,
    UnfinishedRunWarning,
    budget_of,
    data_fingerprint,
    evaluate,
    load_classifier,
    train_classifier,
)

__all__ = [
    "CHECKPOINT_FILE", "HISTORY_COLUMNS", "MODELS", "WEIGHTS_FILE", "ClassifierConfig", "ClassifierRun", "LrPick", "TrainResult",
    "UnfinishedRunWarning", "budget_of", "build_model", "claim_verdict", "combine_verdicts", "confusion", "data_fingerprint",
    "evaluate", "histories", "load_classifier", "pick_lr", "run_classifier", "run_folder", "run_key", "run_seeds", "seed_summary",
    "train_classifier",
]
