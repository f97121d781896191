"""How the retrain dialog words accuracies, dates and the trainer's before/after check."""

from __future__ import annotations

import datetime as _dt
import math

# The trainer holds out a fifth of the pairs for the before/after check only from this many on.
MIN_PAIRS_FOR_CHECK = 10
NOTHING_LEARNED = ("No training step did better on the held-out pairs than the current model, so the new "
                   "version codes photos as before: label more pairs, then train again.")


def format_accuracy(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * float(value):.1f} %"


def format_created(text: str) -> str:
    try:
        return _dt.datetime.fromisoformat(text).astimezone().strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return str(text)


def verdict_text(before: float, after: float, not_worse: bool, held_out_pairs: int | None) -> str:
    """What the held-out check says, in words."""
    if math.isnan(after) or math.isnan(before):
        return (f"Too few labelled pairs to hold some back for a check ({MIN_PAIRS_FOR_CHECK} or more are "
                "needed), so nothing says which model is better: try the new one and roll back if "
                "its results look worse.")
    pairs = f" on {held_out_pairs} pairs it did not train on" if held_out_pairs else " on held-out pairs"
    if not_worse and after > before:
        return f"The new model is better than the current one{pairs}."
    if not_worse:
        return f"The new model is as good as the current one{pairs}."
    return f"The new model is worse than the current one{pairs}; keeping the current model is recommended."


def check_details(event: dict) -> str:
    """What the figures are, in words, under the verdict (empty for an older trainer's event)."""
    if "percentile_before" not in event or math.isnan(float(event["percentile_after"])):
        return ""
    return (f" The figures: searching with one photo of each held-out similar pair ({event.get('gate_searches', 0)} "
            f"searches over the whole library), the share of the library ranked below the other photo. In the "
            f"top 10: {format_accuracy(event['top10_before'])} → {format_accuracy(event['top10_after'])}; mAP over "
            f"the held-out groups {float(event['map_before']):.3f} → {float(event['map_after']):.3f}; held-out "
            f"pair accuracy {format_accuracy(event['held_out_accuracy_before'])} → "
            f"{format_accuracy(event['held_out_accuracy_after'])}.")
