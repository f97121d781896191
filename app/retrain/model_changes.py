"""What the retrain dialog reads from and changes in the library, each run with run_in_thread: facts, activation, deletion."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.store import ModelRow, Store

# Mirrors trainer.library_train.MIN_SIMILAR_PAIRS: importing that module here would import torch
# into the GUI process. tests/gui/test_retrain.py checks that the two agree.
MIN_SIMILAR_PAIRS = 5


@dataclass(frozen=True)
class LibraryFacts:
    """What the dialog shows about a library: usable labelled pairs and the model versions."""

    labelled: int      # every labelled pair
    similar: int       # pairs labelled similar whose two photos are both indexed
    dissimilar: int
    models: tuple[ModelRow, ...]
    active: ModelRow | None
    previous: ModelRow | None  # what "Roll back" re-activates

    @property
    def can_train(self) -> bool:
        return self.active is not None and self.similar >= MIN_SIMILAR_PAIRS


def read_library_facts(library_path: str | os.PathLike) -> LibraryFacts:
    """Count the labelled pairs training can use, the way the trainer counts them, and list models."""
    store = Store.open(library_path, create=False, readonly=True)
    try:
        rows = store.labels()
        slot_of = store.slots_for_hashes({r[0] for r in rows} | {r[1] for r in rows})
        usable = [r[2] for r in rows if r[0] in slot_of and r[1] in slot_of]
        return LibraryFacts(labelled=len(rows), similar=sum(1 for label in usable if label > 0),
                            dissimilar=sum(1 for label in usable if label < 0), models=tuple(store.models()),
                            active=store.active_model(), previous=store.previous_model())
    finally:
        store.close()


def activate_model(library_path: str | os.PathLike, model_id: int | None, *, cancel: threading.Event,
                   report: Callable[[tuple[int, int]], None]) -> ModelRow:
    """Make a model version active, or roll back (``model_id`` None), with a Library of its own:
    the ModelRow now active. Run with run_in_thread.

    Usually a second or so: photos indexed since the version was last active are coded from
    their stored features. A version whose backbone lacks features for some photos (a full
    fine-tune stopped before it encoded the library) decodes them again: that reports
    (photos encoded, photos to encode) and stops on ``cancel``, keeping what it wrote for the
    next try.
    """
    from engine.library import Library  # a slow import: in the worker thread, not as the dialog opens

    def progress(state) -> None:
        report((state.done, state.total))

    with Library(Path(library_path), create=False) as library:
        if model_id is None:  # roll back: the target is read under the writer lock
            return library.roll_back(cancel=cancel, progress=progress)
        return library.activate(model_id, cancel=cancel, progress=progress)


def delete_model(library_path: str | os.PathLike, model_id: int) -> int:
    """Delete a model version that is not active (engine.library.Library.delete_model); its id."""
    from engine.library import Library  # a slow import: in the worker thread, not as the dialog opens

    with Library(Path(library_path), create=False) as library:
        library.delete_model(model_id)
    return model_id
