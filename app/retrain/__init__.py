"""Retraining from the window: the dialog, the trainer subprocess it runs, and the model changes it makes.

Modules, top to bottom (an import-linter layers contract): ``dialog`` (the retrain dialog:
library facts, one thing at a time, the verdict, closing), ``train_tab`` (the trainer's options
and one run's progress, loss chart and check) and ``versions_tab`` (the versions; activation,
roll back, deletion), ``trainer_run`` (one `lookalike train` subprocess), ``model_changes``
(library facts, activation, deletion, run with run_in_thread) and ``versions_table`` (the
versions' table), ``command`` (the trainer's command line) and ``wording`` (how accuracies and
checks are put into words).
"""

from app.retrain.dialog import RetrainDialog

__all__ = ["RetrainDialog"]
