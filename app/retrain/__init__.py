"""Retraining from the window: the dialog, the trainer subprocess it runs, and the model changes it makes.

Modules, top to bottom (an import-linter layers contract): ``dialog`` (the retrain dialog),
``trainer_run`` (one `lookalike train` subprocess) and ``model_changes`` (library facts,
activation, deletion, run with run_in_thread), ``command`` (the trainer's command line) and
``wording`` (how accuracies and checks are put into words).
"""

from app.retrain.dialog import RetrainDialog

__all__ = ["RetrainDialog"]
