"""Labelling in the window: the pair view, the list of labels, and relevance feedback on results.

Every read and write of the catalog here happens in one worker thread (:class:`LabelService`'s
LibraryThread, owning a Library of its own). A label is one small row, but the catalog is
shared with the indexer and the trainer, and SQLite makes a writer wait (up to the store's
30 s busy timeout) while another holds the write lock; the GUI thread must never be the one
waiting. One thread also orders the work: an undo runs after the write it undoes, and a batch
of suggestions asked for after a label already leaves that label's pair out.

The pair view is a dock of the main window rather than a page of its own: the person can
label next to the results they just searched (and give feedback on them), float it as a
window of its own for larger photos, or close it, without touching the results area.

Modules, top to bottom (an import-linter layers contract): ``controller`` (the window's
Labels menu and dock), ``pair_view`` and ``labels_dialog`` (over ``labels_table``),
``service`` (the worker thread), ``items`` (label values and the records passed around).
"""

from app.labeling.controller import LabelingController
from app.labeling.items import DISSIMILAR, FEEDBACK_SOURCE, PAIR_SOURCE, SIMILAR

__all__ = ["DISSIMILAR", "FEEDBACK_SOURCE", "PAIR_SOURCE", "SIMILAR", "LabelingController"]
