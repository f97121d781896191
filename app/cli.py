"""The `lookalike` command line: index folders, search by image, status, models (no Qt: the window is app.entry's)."""

from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import json
import logging
import math
import os
import signal
import sqlite3
import sys
import threading
from pathlib import Path

from engine import __version__
from engine.default_model import build_default_model, default_model_cache
from engine.errors import Cancelled, EnvironmentProblem, LibraryDamaged, LookalikeError, UserError, environment_problem
from trainer.catalog import BACKBONE_HELP, DEFAULT_METHOD, DEFAULT_MODE, FULL_MODE_BACKBONES, LEARNED, MODES

log = logging.getLogger("lookalike")

EXIT_USER = 2
EXIT_ENVIRONMENT = 3
EXIT_CANCELLED = 130

# The engine modules that load numpy (and the trainer's, torch) are imported inside the
# commands that use them, so `lookalike --help` and a mistyped command answer at once.
def _open_library(args, *, create: bool):
    from engine.library import Library

    return Library(args.library, create=create)


def _ensure_model(library, bits: int = 64) -> None:
    if library.store.active_model() is None:
        _install_with_progress(library, build_default_model(bits))


# ---------------------------------------------------------------- commands


def cmd_index(args) -> int:
    from engine.index import Indexer

    library = _open_library(args, create=True)
    with library:
        for pattern in args.exclude or ():
            library.store.add_exclusion(pattern)
        _ensure_model(library)
        cancel = threading.Event()
        previous = signal.getsignal(signal.SIGINT)

        def on_sigint(signum, frame):
            if cancel.is_set():  # a second Ctrl-C: stop now
                signal.signal(signal.SIGINT, previous)
                raise KeyboardInterrupt
            print("\nCancelling: finishing the batch in flight (Ctrl-C again to stop at once) ...",
                  file=sys.stderr)
            cancel.set()

        signal.signal(signal.SIGINT, on_sigint)
        try:
            with _Progress(enabled=not args.quiet and sys.stderr.isatty()) as progress:
                indexer = Indexer(library, workers=args.workers, batch_size=args.batch_size, include_hidden=args.include_hidden,
                                  providers=args.provider, progress=progress.update, cancel=cancel)
                report = indexer.run(args.paths)
        finally:
            signal.signal(signal.SIGINT, previous)
    if args.json:
        print(json.dumps({**report.as_dict(), "skipped_files": report.skipped_files, "merged": report.merged}))
    elif not args.quiet:
        for inner, outer in report.merged:
            print(f"{inner} is inside {outer}: indexed as part of it", file=sys.stderr)
        print(_index_summary(report), file=sys.stderr)
        for path, reason in report.skipped_files[:20]:
            print(f"  skipped {path}: {reason}", file=sys.stderr)
        if len(report.skipped_files) > 20:
            print(f"  ... and {len(report.skipped_files) - 20} more ('lookalike status' lists them)",
                  file=sys.stderr)
    return EXIT_CANCELLED if report.cancelled else 0


def _index_summary(report) -> str:
    parts = [f"{report.found} photos found", f"{report.added} encoded", f"{report.reused} reused",
             f"{report.unchanged} unchanged", f"{report.skipped} skipped", f"{report.removed} removed"]
    head = "Cancelled" if report.cancelled else "Indexed"
    line = f"{head}: " + ", ".join(parts) + f" in {report.elapsed:.1f} s"
    if report.refit:
        line += f"; hash head refitted on your photos ({report.refit})"
    return line


def cmd_search(args) -> int:
    from engine.library import Query
    from engine.search import SearchParams

    params_kwargs = {"k": args.k, "rerank": args.rerank}
    if args.pool is not None:
        params_kwargs["pool"] = args.pool
    if args.radius is not None:
        params_kwargs["radius"] = args.radius
    params = SearchParams(**params_kwargs)
    library = _open_library(args, create=False)
    status = 0
    with library:
        library.active_model()
        # The examples refine every query: read them once, and fail before any output if one cannot be.
        like = tuple(_example(library, path, "--like") for path in args.like or ())
        unlike = tuple(_example(library, path, "--unlike") for path in args.unlike or ())
        queries: list[tuple[object, list[str]]] = [(image, [image]) for image in args.images]
        if args.together:
            queries = [(list(args.images), list(args.images))]
        for label, images in queries:
            missing = [image for image in images if not os.path.exists(image)]
            if missing:
                print(f"lookalike: {missing[0]}: no such file", file=sys.stderr)
                status = EXIT_USER
                continue
            try:
                photos = tuple(library.example_from_file(image) for image in images)
                hits = library.search_query(Query(photos, like, unlike), params)
            except UserError as exc:
                print(f"lookalike: {exc}", file=sys.stderr)
                status = EXIT_USER
                continue
            if args.json:
                line = {"query": label, **(_bytes_field("query", label) if isinstance(label, str) else {}),
                        "results": [{"path": h.path, **_bytes_field("path", h.path), "hamming": h.hamming,
                                     "score": round(h.score, 6), "similarity": h.similarity.label}
                                    for h in hits]}
                if like or unlike:
                    line.update({"like": list(args.like or ()), "unlike": list(args.unlike or ())})
                print(json.dumps(line))
            else:
                print(f"{' + '.join(images)}:")
                for rank, hit in enumerate(hits, 1):
                    print(f"{rank:4d}  {hit.similarity.label:15}  {hit.score:6.3f}  {hit.hamming:3d}  {hit.path}")
            sys.stdout.flush()
    return status


def _example(library, path: str, flag: str):
    if not os.path.exists(path):
        raise UserError(f"{flag} {path}: no such file")
    return library.example_from_file(path)


@contextlib.contextmanager
def _cancel_on_sigint(what: str):
    """An Event set by the first Ctrl-C (the work stops at its next check and cleans up); a
    second Ctrl-C stops at once."""
    cancel = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield cancel
        return
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):
        if cancel.is_set():
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        print(f"\nCancelling {what} (Ctrl-C again to stop at once) ...", file=sys.stderr)
        cancel.set()

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield cancel
    finally:
        signal.signal(signal.SIGINT, previous)


def cmd_duplicates(args) -> int:
    from engine.duplicates import KEEP_RULES, find_duplicates

    library = _open_library(args, create=False)
    with library:
        if args.strictness != "exact":
            library.active_model()
        with _cancel_on_sigint("the duplicate search") as cancel, \
                _TrainProgress(enabled=not args.json and sys.stderr.isatty(), total=0) as bar:
            groups = find_duplicates(
                library, args.strictness, keep=args.keep, cancel=cancel,
                progress=lambda done, total: bar.update({"event": "phase", "phase": "Comparing photos",
                                                         "done": done, "total": total}))
        copies = [m for g in groups for m in g.others]
        wasted = sum(m.size for m in copies)
        if args.json:
            for group in groups:
                print(json.dumps({"keep": group.keep.path, "others": [m.path for m in group.others],
                                  "score": group.score}))
        else:
            for number, group in enumerate(groups, 1):
                print(f"Group {number}: {1 + len(group.others)} photos, similarity {group.score:.3f}")
                for tag, m in (("keep ", group.keep), *(("other", o) for o in group.others)):
                    print(f"  {tag}  {_describe_member(m)}  {m.path}")
            rule = KEEP_RULES[args.keep]
            print(f"{len(groups)} groups ({args.strictness}), {len(copies)} other copies, {_size(wasted)}; "
                  f"kept: {rule.description}", file=sys.stderr)
        if args.trash_others:
            return _trash_others(library, groups, yes=args.yes)
    return 0


def _describe_member(m) -> str:
    return f"{_size(m.size):>9s}  {m.pixels / 1e6:5.1f} MP"


def _size(count: int) -> str:
    """Bytes for a person: 1.2 MB, 340 KB (as the window says them)."""
    from engine.actions import size_text

    return size_text(count)


def _trash_others(library, groups, *, yes: bool) -> int:
    others = [m.path for g in groups for m in g.others]
    if not others:
        print("Nothing to move to the trash", file=sys.stderr)
        return 0
    return _trash_confirmed(library, others, yes=yes)


def _trash_confirmed(library, paths: list[str], *, yes: bool) -> int:
    """Send ``paths`` to the trash after the person said yes to the count and total size (or --yes);
    without a terminal to ask on, refuse unless --yes."""
    from engine import actions

    size = actions.total_size(paths)
    what = f"{len(paths)} photo{'' if len(paths) == 1 else 's'} ({_size(size)})"
    if actions.trash_restorable():
        note = "'lookalike undo' puts them back"
    else:
        note = "Lookalike cannot put them back on this system: restore them from the trash yourself"
    if not yes:
        if not sys.stdin.isatty():
            raise UserError(f"not moving {what} to the trash without asking: run it in a terminal, or add --yes")
        print(f"Move {what} to the trash? ({note}) [y/N] ", end="", file=sys.stderr, flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            print("Nothing was moved", file=sys.stderr)
            return 0
    report = actions.trash(library, paths)
    return _action_summary(report, f"Moved {len(report.done)} of {what} to the trash; {note}")


def _action_summary(report, line: str) -> int:
    print(line, file=sys.stderr)
    for path, why in report.failed:
        print(f"  not done: {path}: {why}", file=sys.stderr)
    return 1 if report.failed else 0


def cmd_trash(args) -> int:
    from engine.actions import existing_files

    library = _open_library(args, create=False)
    with library:
        return _trash_confirmed(library, existing_files(args.paths), yes=args.yes)


def cmd_move(args) -> int:
    from engine import actions

    library = _open_library(args, create=False)
    with library:
        report = actions.move(library, args.paths, args.to, copy=args.copy)
    verb = "Copied" if args.copy else "Moved"
    return _action_summary(report, f"{verb} {len(report.done)} of {len(args.paths)} files to {args.to} "
                                   "('lookalike undo' reverses it)")


def cmd_undo(args) -> int:
    from engine import actions

    library = _open_library(args, create=False)
    with library:
        report = actions.undo(library)
    kind = report.kind.removeprefix("undo ")
    done = {"move": "moved back", "copy": "copies sent to the trash", "trash": "restored from the trash"}.get(kind, "undone")
    return _action_summary(report, f"Undid a {kind}: {len(report.done)} files {done}")


def cmd_status(args) -> int:
    from engine.repair import check_library

    library = _open_library(args, create=False)
    with library:
        status = library.status()
        skipped = library.store.skipped()
        # Codes are small: check them every time (features: 'lookalike repair --check').
        problems = check_library(library.store, features=False).problems()
    status["damage"] = problems
    if args.json:
        status["skipped_files"] = [{"path": p, **_bytes_field("path", p), "reason": r} for p, r in skipped]
        print(json.dumps(status, indent=2))
        _raise_if_damaged(problems)
        return 0
    model = status["model"]
    print(f"Library:  {status['library']}")
    print(f"Roots:    {', '.join(status['roots']) or '(none)'}")
    print(f"Photos:   {status['images']} indexed, {status['skipped']} skipped, {status['labels']} labelled pairs")
    if model:
        print(f"Model:    v{model['version']} {model['name']} ({model['bits']} bits, "
              f"{model['feature_dim']}-d features, head {model['head'].get('kind')})")
    else:
        print("Model:    none yet")
    run = status["last_run"]
    if run:
        print(f"Last run: {run['status']} at {run['finished_at'] or run['started_at']}")
    if skipped:
        print("Skipped files:")
        for path, reason in skipped[: args.limit]:
            print(f"  {path}: {reason}")
        if len(skipped) > args.limit:
            print(f"  ... and {len(skipped) - args.limit} more (--limit N, or --json for all)")
    _raise_if_damaged(problems)
    return 0


def _raise_if_damaged(problems: list[str]) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise LibraryDamaged(f"the library is damaged: {problems[0]}{more}; run 'lookalike repair'")


def cmd_repair(args) -> int:
    from engine.repair import check_library, repair_library

    library = _open_library(args, create=False)
    with library:
        if args.check:
            found = check_library(library.store, catalog=True)
            for line in found.problems():
                print(line)
            if found.unverified:
                print(f"{found.unverified} array rows have no checksum yet (written before checksums); "
                      "'lookalike repair' gives them one")
            if not found.sound:
                if not found.catalog_ok:
                    raise LibraryDamaged("the catalog is damaged (see above): restore catalog.sqlite3 from a backup "
                                         "if you have one; 'lookalike labels export' may still save your labels")
                _raise_if_damaged(found.problems())
            print("No damage found", file=sys.stderr)
            return 0
        with _TrainProgress(enabled=sys.stderr.isatty(), total=0) as bar:
            report = repair_library(library.store, workers=args.workers, progress=_encode_progress(bar))
    print(f"Repaired: {report.reencoded} photos encoded again, {report.recoded} code rows recomputed, "
          f"{report.adopted} rows given a checksum" + (f"; {report.unreadable} photos could not be read again "
                                                       "and are left out of results" if report.unreadable else ""),
          file=sys.stderr)
    _raise_if_damaged(report.still_damaged)
    return 0


def cmd_roots(args) -> int:
    library = _open_library(args, create=False)
    with library:
        if args.roots_command == "forget":
            forgotten = library.forget_root(args.path)
            print(f"Forgot {os.path.abspath(os.path.expanduser(args.path))} and its {forgotten} photos "
                  "(labels are kept: they come back with the photos)", file=sys.stderr)
            return 0
        roots = library.roots()
    if args.json:
        print(json.dumps([{**root, **_bytes_field("path", root["path"])} for root in roots]))
        return 0
    if not roots:
        print("No folders yet (lookalike index PATH)", file=sys.stderr)
    for root in roots:
        where = "" if root["reachable"] else "  (not reachable: 'lookalike roots forget PATH' forgets it)"
        print(f"{root['path']}  {root['photos']} photos, {root['skipped']} skipped{where}")
    return 0


def cmd_model_build(args) -> int:
    target = build_default_model(args.bits)
    library = _open_library(args, create=True)
    with library:
        row = _install_with_progress(library, target)
        print(f"Model v{row.id} {row.name} is active in {library.path}", file=sys.stderr)
    return 0


def cmd_model_list(args) -> int:
    library = _open_library(args, create=False)
    with library:
        models = library.store.models()
    if args.json:
        print(json.dumps([{"version": m.id, "name": m.name, "bits": m.bits, "active": m.active,
                           "created_at": m.created_at, "head": m.manifest.get("head")} for m in models]))
        return 0
    for m in models:
        mark = "*" if m.active else " "
        print(f"{mark} v{m.id:<4d} {m.name:<32s} {m.bits:3d} bits  {m.created_at}")
    return 0


def cmd_model_refit(args) -> int:
    library = _open_library(args, create=False)
    with library:
        row = library.refit_head(args.kind)
        print(f"Model v{row.id} {row.name} is active", file=sys.stderr)
    return 0


def _encode_progress(bar):
    return lambda state: bar.update(
        {"event": "phase", "phase": "encode", "done": state.done, "total": state.total, "rate": state.rate})


def _activate_with_progress(library, model_id: int):
    """Activate a version; photos it has no codes for yet are encoded under a progress bar
    (Ctrl+C stops it; what was encoded is kept and the previous version stays active)."""
    with _TrainProgress(enabled=sys.stderr.isatty(), total=0) as bar:
        return library.activate(model_id, progress=_encode_progress(bar))


def _install_with_progress(library, model_dir):
    """Install a version and activate it as _activate_with_progress does."""
    with _TrainProgress(enabled=sys.stderr.isatty(), total=0) as bar:
        return library.install_model(model_dir, activate=True, progress=_encode_progress(bar))


def cmd_model_activate(args) -> int:
    library = _open_library(args, create=False)
    with library:
        row = _activate_with_progress(library, args.version)
        print(f"Model v{row.id} {row.name} is active", file=sys.stderr)
    return 0


def cmd_model_rollback(args) -> int:
    library = _open_library(args, create=False)
    with library:
        with _TrainProgress(enabled=sys.stderr.isatty(), total=0) as bar:
            row = library.roll_back(progress=lambda state: bar.update(
                {"event": "phase", "phase": "encode", "done": state.done, "total": state.total, "rate": state.rate}))
        print(f"Rolled back: model v{row.id} {row.name} is active", file=sys.stderr)
    return 0


def cmd_model_delete(args) -> int:
    library = _open_library(args, create=False)
    with library:
        model = library.store.model(args.version)
        removed = library.delete_model(args.version)
    print(f"Deleted model v{model.id} {model.name} (labels are kept); removed "
          + ", ".join(str(path) for path in removed), file=sys.stderr)
    return 0


def cmd_labels_import(args) -> int:
    from engine.labels import describe_problems, import_class_folders, import_csv

    library = _open_library(args, create=False)
    if os.path.isdir(args.csv):
        with library:
            report = import_class_folders(library.store, args.csv, per_photo=args.per_photo)
        for problem in report.problems:
            print(f"{args.csv}: {problem}", file=sys.stderr)
        print(f"Imported {report.added} labelled pairs from the class folders", file=sys.stderr)
        return 0
    with library:
        report = import_csv(library.store, args.csv)
    if report.problems:
        for problem in report.problems[:50]:
            print(f"{args.csv}: {problem}", file=sys.stderr)
        more = len(report.problems) - 50
        listed = "the lines are listed above" + (f", {more} more not shown" if more > 0 else "")
        raise UserError(f"nothing imported: {describe_problems(report)} ({listed})")
    print(_describe_import(report), file=sys.stderr)
    return 0


def _describe_import(report) -> str:
    """What a CSV import did, in one line: pairs, lines, and how repeats and contradictions went."""
    def count(n: int, one: str, many: str) -> str:
        return f"{n:,} {one if n == 1 else many}"

    line = (f"Imported {count(report.added, 'labelled pair', 'labelled pairs')} from "
            f"{count(report.lines, 'line', 'lines')} ({report.new:,} new, {report.replaced:,} replaced a different "
            f"label, {report.unchanged:,} already so)")
    if report.duplicates:
        line += f"; {count(report.duplicates, 'line repeated a pair', 'lines repeated a pair')}"
    if report.conflicts:
        line += (f"; {count(report.conflicts, 'pair was', 'pairs were')} labelled both similar and dissimilar: "
                 f"{'its' if report.conflicts == 1 else 'each'} last line's label was kept")
    return line


def cmd_labels_export(args) -> int:
    from engine.labels import export_csv, export_csv_file

    library = _open_library(args, create=False)
    with library:
        if args.output == "-":
            count = export_csv(library.store, sys.stdout)
        else:
            count = export_csv_file(library.store, args.output)
    print(f"Exported {count} labelled pairs", file=sys.stderr)
    return 0


def _bytes_field(name: str, path: str) -> dict:
    """For a path that is not valid UTF-8: its exact bytes (base64) beside the JSON string.

    JSON text cannot hold such a name; the string field holds it as Python does (each byte
    that is not UTF-8 as a lone surrogate, \\udcXX: json.loads then os.fsencode give the bytes
    back), and ``<name>_bytes`` serves tools outside Python. Absent for ordinary names."""
    try:
        path.encode("utf-8")
        return {}
    except UnicodeEncodeError:
        return {f"{name}_bytes": base64.b64encode(os.fsencode(path)).decode("ascii")}


def _parse_duration(text: str | None) -> float | None:
    """'90', '90s', '5m', '1h' to seconds (more than zero)."""
    if text is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text[-1:].lower() in units:
            seconds = float(text[:-1]) * units[text[-1].lower()]
        else:
            seconds = float(text)
    except ValueError:
        raise UserError(f"cannot read the duration {text!r} (say 90s, 5m or 1h)") from None
    if not seconds > 0 or seconds == float("inf"):
        raise UserError(f"a duration must be more than zero, not {text!r}")
    return seconds


def _json_progress(event: dict) -> None:
    print(json.dumps(event, default=float), flush=True)


def _require_training() -> None:
    """Exit 3 with one line naming the command to run when PyTorch (the train extra) is missing."""
    from app.extras import training_available, training_missing_message

    if not training_available():
        raise EnvironmentProblem(training_missing_message())


def cmd_train(args) -> int:
    _require_training()
    if args.backbone and args.mode != "full":
        raise UserError("--backbone needs --mode full")
    library = _open_library(args, create=False)
    with library:
        with library.store.writing():
            pass  # refuse a busy (or read-only) library now, not after the training
        # torch: only the commands that train import it
        from trainer.fit import HeadConfig
        from trainer.full import FullConfig
        from trainer.library_train import train_library, train_library_full

        bits = args.bits or library.active_model().bits
        budget = args.budget
        if args.mode == "full":
            config = FullConfig(method=args.method, bits=bits, seed=args.seed, budget=budget, device=args.device)
            if args.backbone:
                config.backbone = args.backbone
            if args.epochs:
                config.epochs = args.epochs
            if args.size:
                config.input_size = args.size
            total = config.epochs

            def run(progress):
                return train_library_full(library, config, activate=policy, progress=progress)
        else:
            config = HeadConfig(method=args.method, bits=bits, seed=args.seed, budget=budget)
            if args.steps:
                config.steps = args.steps
            total = config.schedule()[0]

            def run(progress):
                return train_library(library, config, activate=policy, progress=progress)
        policy = "always" if args.force else "never" if args.no_activate else "auto"
        if args.progress == "json":
            run(_json_progress)
            return 0
        with _TrainProgress(enabled=sys.stderr.isatty(), total=total) as bar:
            report = run(bar.update)
    verdict = ("activated" if report["activated"] else
               f"not activated (activate it with 'lookalike model activate {report['version']}')" if args.no_activate
               else "kept the previous model active (use --force to activate)")
    print(f"Model v{report['version']} {report['name']}: {_check_summary(report)}; {verdict}", file=sys.stderr)
    if report.get("best_step") == 0 or report.get("best_epoch") == 0:
        print("lookalike: no training step did better on the held-out pairs than the model it started from, "
              "so the new version codes photos as before; label more pairs and train again", file=sys.stderr)
    return 0


def _check_summary(report: dict) -> str:
    """The held-out check in words: where the held-out partner ranks before -> after, then the other figures."""
    def pct(value) -> str:
        return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}%"

    def num(value) -> str:
        return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"

    before, after = report.get("percentile_before"), report.get("percentile_after")
    if before is None or after is None or math.isnan(after):
        return ("too few labelled pairs to hold some back, so the new version is unchecked "
                "('lookalike model rollback' returns to the previous one)")
    return (f"searching with {report.get('gate_searches', 0)} held-out photos, the photo labelled similar ranks "
            f"ahead of {pct(before)} -> {pct(after)} of the library on average (in the top 10: "
            f"{pct(report.get('top10_before'))} -> {pct(report.get('top10_after'))}; mAP "
            f"{num(report.get('map_before'))} -> {num(report.get('map_after'))}; held-out pair accuracy "
            f"{num(report['held_out_accuracy_before'])} -> {num(report['held_out_accuracy_after'])}); "
            f"results re-ranked by {report.get('rerank', 'features')}")


def cmd_eval(args) -> int:
    _require_training()
    from trainer.methods import METHODS
    from trainer.run_eval import run_eval

    methods = [m.strip() for m in args.methods.split(",")] if args.methods else list(METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UserError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    bits = args.bits
    progress = _json_progress if args.progress == "json" else (
        lambda e: print(_describe_eval_event(e), file=sys.stderr) if e["event"] == "result" else None)
    result = run_eval(args.dataset, methods, bits, Path(args.out), model_dir=build_default_model(64),
                      cache_dir=default_model_cache() / "features", queries_per_class=args.queries_per_class,
                      train_size=args.train_size, database_size=args.database_size, seed=args.seed,
                      steps=args.steps, mode=args.mode, full_options=_full_options(args), progress=progress)
    print(f"Wrote {', '.join(result['paths'].values())}", file=sys.stderr)
    return 0


def _full_options(args) -> dict:
    """FullConfig fields given on the command line (the rest keep the recipe's defaults)."""
    chosen = {"epochs": args.epochs, "input_size": args.size, "threads": getattr(args, "threads", None),
              "tuned_blocks": getattr(args, "tuned_blocks", None),
              "backbone": getattr(args, "backbone", None)}
    return {key: value for key, value in chosen.items() if value is not None}


def _describe_eval_event(event: dict) -> str:
    bits = f"{event['bits']:3d} bits" if event.get("bits") else "  float  "
    extra = f"  mAP@1000 {event['map_1000']:.3f}  P@r2 {event['p_r2']:.3f}" if "map_1000" in event else ""
    return f"{event['method']:<24s} {bits}  mAP {event['map_all']:.3f}{extra}"


class _TrainProgress:
    """Rich bars for `lookalike train`: one per phase (decoding, training steps, encoding the library)."""

    LABELS = {"decode": "Reading labelled photos", "train": "Training", "export": "Exporting",
              "encode": "Encoding the library"}

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total = enabled, total
        self._bar = None
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> "_TrainProgress":
        if self.enabled:
            # rich: only when a bar is drawn on a terminal
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[note]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                 TimeRemainingColumn())
            self._bar.start()
        return self

    def _task(self, phase: str, total: int | None) -> int:
        if phase not in self._tasks:
            self._tasks[phase] = self._bar.add_task(self.LABELS.get(phase, phase), total=total, note="")
        return self._tasks[phase]

    def update(self, event: dict) -> None:
        if not self._bar:
            return
        kind = event.get("event")
        if kind == "epoch":
            task = self._task("train", event.get("steps") or self.total)
            note = f"loss {event['loss']:.4f}" if event.get("loss") is not None else ""
            if event.get("held_out_accuracy") is not None:
                note += f"  held-out {event['held_out_accuracy']:.3f}"
            self._bar.update(task, total=event.get("steps") or self.total, completed=event["step"], note=note)
        elif kind == "phase" and event["phase"] != "train":
            task = self._task(event["phase"], event.get("total"))
            note = f"{event['rate']:.1f}/s" if event.get("rate") else ""
            self._bar.update(task, total=event.get("total"), completed=event.get("done", 0), note=note)

    def __exit__(self, *exc) -> None:
        if self._bar:
            self._bar.stop()


# ------------------------------------------------------------------ progress


class _Progress:
    """A rich progress bar on stderr with rate and ETA (nothing when not a terminal)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._bar = None
        self._task = None
        self._phase = None

    def __enter__(self) -> "_Progress":
        if self.enabled:
            # rich: only when a bar is drawn on a terminal
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self._bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                TimeRemainingColumn(), TextColumn("{task.fields[note]}"),
                transient=False, console=None,
            )
            self._bar.start()
            self._task = self._bar.add_task("Walking", total=None, rate="", note="")
        return self

    def update(self, p) -> None:
        if not self._bar:
            return
        if p.phase == "walking":
            self._bar.update(self._task, description="Walking", completed=p.found, note=f"{p.found} photos")
            return
        note = f"{p.skipped} skipped" if p.skipped else ""
        self._bar.update(self._task, description="Indexing" if p.phase == "indexing" else "Finishing",
                         total=p.total, completed=p.done, rate=f"{p.rate:5.1f}/s", note=note)

    def __exit__(self, *exc) -> None:
        if self._bar:
            self._bar.stop()


# -------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, "lookalike: ...", and exit 2 (the person's input)."""

    def error(self, message: str):
        command = self.prog.removeprefix("lookalike").strip()
        where = f"{command}: " if command else ""
        self.exit(EXIT_USER, f"lookalike: {where}{message} (see 'lookalike {command + ' ' if command else ''}--help')\n")


def _whole(low: int, high: int | None = None):
    """An argparse type: a whole number from ``low`` to ``high`` (no upper bound: None)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"takes a whole number, not {text!r}") from None
        if value < low or (high is not None and value > high):
            span = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"must be {span}, not {value}")
        return value

    parse.__name__ = "number"  # what argparse would name the type in a message
    return parse


def _bits_list(text: str) -> list[int]:
    """--bits of eval: code lengths separated by commas, each a valid length."""
    return [_BITS(part.strip()) for part in text.split(",")]


def _duration(text: str) -> float:
    try:
        return _parse_duration(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_BITS = _whole(8, 1024)  # shorter codes tell too few photos apart; longer ones than any feature has dims
_SIZE = _whole(32, 1024)  # network input in pixels: the backbones downsample by 32


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lookalike", description="Find the photos in your folders that look like a query photo.")
    parser.add_argument("--version", action="version", version=f"lookalike {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    parser.add_argument("--self-test", action="store_true",
                        help="check this installation end to end on a few photos made on the spot (exit 0 or 1)")
    library = _Parser(add_help=False)
    library.add_argument("--library", metavar="DIR", default=None,
                         help="library folder (default: $LOOKALIKE_LIBRARY or the user data folder)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("index", parents=[library], help="index photo folders (and re-index changes)")
    p.add_argument("paths", nargs="*", metavar="PATH", help="folders to index (default: the library's folders)")
    p.add_argument("--exclude", action="append", metavar="PATTERN",
                   help="skip names or relative paths matching this pattern (kept for later runs)")
    p.add_argument("--include-hidden", action="store_true", help="also index hidden files and folders")
    p.add_argument("--workers", type=_whole(0), default=None,
                   help="decoder processes (default: one per core; 0: decode in this process)")
    p.add_argument("--provider", default="auto", choices=["auto", "cpu", "cuda", "tensorrt"],
                   help="ONNX Runtime device (default: the GPU when there is one)")
    p.add_argument("--batch-size", type=_whole(1), default=32, help="photos encoded and committed together")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", parents=[library], help="find photos that look like IMAGE",
                       description="Find the photos that look like each IMAGE (one result list per IMAGE, "
                                   "or one for all of them with --together). Each result: rank, how alike "
                                   "(Same photo, Very similar, Similar, Loosely similar, Not alike), score, "
                                   "Hamming distance, path.")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-k", type=_whole(1), default=20, help="number of results (default 20)")
    p.add_argument("--like", action="append", metavar="PHOTO",
                   help="a photo like what you are looking for: moves every query toward it (repeatable)")
    p.add_argument("--unlike", action="append", metavar="PHOTO",
                   help="a photo unlike what you are looking for: moves every query away from it, and "
                        "it (and its copies) never appears in the results (repeatable)")
    p.add_argument("--together", action="store_true",
                   help="search for photos like all the IMAGEs at once: one result list")
    p.add_argument("--pool", type=_whole(1), default=None, help="Hamming candidates to re-rank")
    p.add_argument("--radius", type=_whole(0), default=None, help="re-rank every code within this Hamming radius")
    p.add_argument("--rerank", default="auto", choices=["auto", "features", "code", "none"],
                   help="how the candidates are ordered: auto (default) as the active model version says, "
                        "features (cosine on the network's features), code (in the trained hash layer's "
                        "space), none (Hamming distance only)")
    p.add_argument("--no-rerank", dest="rerank", action="store_const", const="none",
                   help="the same as --rerank none")
    p.add_argument("--json", action="store_true", help="one JSON object per query per line")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("duplicates", parents=[library], help="groups of copies of one photo across the library",
                       description="Groups of photos that are copies of each other, with a suggested keeper "
                                   "per group.")
    p.add_argument("--strictness", default="near", choices=["exact", "near", "similar"],
                   help="exact: the same bytes; near (default): resized, recompressed, re-encoded, rotated or "
                        "lightly cropped copies; similar: looser, shots that look alike")
    p.add_argument("--keep", default="largest", choices=["largest", "biggest-file", "oldest"],
                   help="which photo of a group to keep: largest resolution (default), largest file, or oldest "
                        "(date taken, else modification time)")
    p.add_argument("--json", action="store_true",
                   help='one group per line: {"keep": PATH, "others": [PATH, ...], "score": S}')
    p.add_argument("--trash-others", action="store_true",
                   help="move every photo but the keeper to the system trash (asks first; 'lookalike undo' "
                        "restores them)")
    p.add_argument("--yes", action="store_true", help="do not ask before trashing")
    p.set_defaults(func=cmd_duplicates)

    p = sub.add_parser("trash", parents=[library], help="move photos to the system trash (asks first)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--yes", action="store_true", help="do not ask first")
    p.set_defaults(func=cmd_trash)

    p = sub.add_parser("move", parents=[library], help="move (or copy) photos into a folder; the library follows")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--to", required=True, metavar="DIR", help="the folder to move them into")
    p.add_argument("--copy", action="store_true", help="copy instead of moving")
    p.set_defaults(func=cmd_move)

    p = sub.add_parser("undo", parents=[library],
                       help="reverse the last trash, move or copy (a trashed photo comes back from the trash)")
    p.set_defaults(func=cmd_undo)

    p = sub.add_parser("roots", parents=[library], help="the folders the library indexes; forget one")
    p.add_argument("--json", action="store_true")
    roots_sub = p.add_subparsers(dest="roots_command", metavar="ACTION")
    forget = roots_sub.add_parser("forget", help="forget a folder and its photos (labels are kept)")
    forget.add_argument("path", metavar="PATH")
    # default SUPPRESS: a sub-command's own default would overwrite `roots --library DIR forget`'s
    forget.add_argument("--library", metavar="DIR", default=argparse.SUPPRESS, help="library folder")
    p.set_defaults(func=cmd_roots)

    p = sub.add_parser("status", parents=[library], help="counts, skipped files with reasons, model")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=_whole(0), default=50, help="skipped files to list (default 50)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("repair", parents=[library],
                       help="check the arrays against their checksums and encode damaged photos again")
    p.add_argument("--check", action="store_true",
                   help="only look: check the arrays and the catalog (SQLite integrity_check) and report")
    p.add_argument("--workers", type=int, default=None, help="decoder processes (default: one per core)")
    p.set_defaults(func=cmd_repair)

    model = sub.add_parser("model", help="build and manage model versions")
    model_sub = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    p = model_sub.add_parser("build", parents=[library],
                             help="install the default model (shipped; other code lengths derived from it) and make it active")
    p.add_argument("--bits", type=int, default=64, choices=[16, 32, 48, 64, 128])
    p.set_defaults(func=cmd_model_build)
    p = model_sub.add_parser("list", parents=[library], help="list model versions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_model_list)
    p = model_sub.add_parser("refit", parents=[library],
                             help="refit the classical hash head on the stored features (no decoding)")
    p.add_argument("--kind", default="itq", choices=["itq", "pcah", "lsh"])
    p.set_defaults(func=cmd_model_refit)
    p = model_sub.add_parser("activate", parents=[library], help="make model version N active")
    p.add_argument("version", type=_whole(1), metavar="N")
    p.set_defaults(func=cmd_model_activate)
    p = model_sub.add_parser("rollback", parents=[library],
                             help="re-activate the model active before this one (again: the one before that)")
    p.set_defaults(func=cmd_model_rollback)
    p = model_sub.add_parser("delete", parents=[library],
                             help="delete model version N (not the active one) and its files; labels are kept")
    p.add_argument("version", type=int, metavar="N")
    p.set_defaults(func=cmd_model_delete)

    p = sub.add_parser("train", parents=[library], help="learn from your labelled pairs (a new model version)")
    p.add_argument("--method", default=DEFAULT_METHOD, choices=LEARNED,
                   help=f"deep-hashing method (default {DEFAULT_METHOD})")
    p.add_argument("--bits", type=_BITS, default=None, help="code length, 8 to 1024 (default: the active model's)")
    p.add_argument("--mode", default=DEFAULT_MODE, choices=MODES,
                   help="head: train the hash layer on the stored features (seconds, no decoding); "
                        "full: fine-tune the network too, then encode the library again (minutes) "
                        f"(default {DEFAULT_MODE})")
    p.add_argument("--steps", type=_whole(1), default=None, help="head mode: optimizer steps (default: the method's, 3000 for dpsh, else 1500)")
    p.add_argument("--epochs", type=_whole(1), default=None, help="full mode: at most this many epochs (default 15; early stopping usually ends sooner)")
    p.add_argument("--size", type=_SIZE, default=None, help="full mode: network input size in pixels (default 112)")
    p.add_argument("--backbone", default=None, choices=FULL_MODE_BACKBONES, help=BACKBONE_HELP)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="full mode: where to train (auto: a CUDA GPU when PyTorch sees one)")
    p.add_argument("--budget", type=_duration, default=None, metavar="T",
                   help="stop training after this long (90s, 5m, 1h); the best epoch so far is kept")
    p.add_argument("--seed", type=_whole(0), default=0)
    when = p.add_mutually_exclusive_group()
    when.add_argument("--force", action="store_true", help="activate even if held-out pair accuracy drops")
    when.add_argument("--no-activate", action="store_true", help="write the new version but leave it inactive")
    p.add_argument("--progress", default="bar", choices=["bar", "json"], help="json: one JSON object per line")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate hashing methods on a labelled dataset (mAP, P@r2, PR curve)")
    p.add_argument("--dataset", required=True, help="fashion-mnist, digits, or a folder of class folders")
    p.add_argument("--methods", default=None, help="comma-separated (default: all)")
    p.add_argument("--bits", type=_bits_list, default=[16, 32, 48, 64], help="comma-separated code lengths")
    p.add_argument("--out", default="eval-results", help="folder for results.md, results.json, pr.png")
    p.add_argument("--queries-per-class", type=_whole(1), default=100)
    p.add_argument("--train-size", type=_whole(1), default=5000)
    p.add_argument("--database-size", type=_whole(1), default=None, help="subsample the database (stratified)")
    p.add_argument("--steps", type=_whole(1), default=None, help="optimizer steps per learned method (head mode)")
    p.add_argument("--mode", default="head", choices=["head", "full"],
                   help="head: hash heads on frozen features; full: fine-tune the backbone per method")
    p.add_argument("--epochs", type=_whole(1), default=None, help="full mode: epochs per method")
    p.add_argument("--size", type=_SIZE, default=None, help="full mode: input size in pixels (default 112)")
    p.add_argument("--threads", type=_whole(1), default=None, help="full mode: CPU threads for PyTorch")
    p.add_argument("--tuned-blocks", type=_whole(0), default=None, metavar="N",
                   help="full mode: backbone blocks fine-tuned, from the last (default 8 of Lite0's 16)")
    p.add_argument("--backbone", default=None, choices=FULL_MODE_BACKBONES, help=BACKBONE_HELP)
    p.add_argument("--seed", type=_whole(0), default=0)
    p.add_argument("--progress", default="text", choices=["text", "json"])
    p.set_defaults(func=cmd_eval)

    labels = sub.add_parser("labels", help="import and export labelled pairs")
    labels_sub = labels.add_subparsers(dest="labels_command", metavar="ACTION", required=True)
    p = labels_sub.add_parser("import", parents=[library],
                              help="import pairs from a CSV (header a,b,label; similar/dissimilar or 1/-1), "
                                   "or from a folder with one subfolder per kind of photo")
    p.add_argument("csv", metavar="FILE.csv|FOLDER")
    p.add_argument("--per-photo", type=_whole(1), default=4, metavar="N",
                   help="FOLDER: similar and dissimilar partners drawn for each photo (default 4)")
    p.set_defaults(func=cmd_labels_import)
    p = labels_sub.add_parser("export", parents=[library], help="write every labelled pair as CSV")
    p.add_argument("output", metavar="FILE.csv", nargs="?", default="-", help="default: standard output")
    p.set_defaults(func=cmd_labels_export)
    return parser


def command_names() -> set[str]:
    """The command words (index, search, ...): a word that is one is a command, never a photo."""
    parser = build_parser()
    return {name for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name in action.choices}


def print_names_as_bytes() -> None:
    """Print a file name that is not UTF-8 as its own bytes (as ls and find do), not crash on it."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="surrogateescape")


@contextlib.contextmanager
def _terminate_as_interrupt():
    """Treat SIGTERM (the GUI's cancel of a trainer, a service stop) like Ctrl+C, so that
    cleanup runs: scratch folders go, the active model stays as it was."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """Run one command (``app.entry.main`` opens the window when there is none)."""
    print_names_as_bytes()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.self_test:  # app.entry answers `lookalike --self-test`; the CLI alone has no window to check
        print("lookalike: --self-test takes no other arguments (lookalike --self-test)", file=sys.stderr)
        return 2
    if args.command is None:
        parser.print_help()
        return 0
    try:
        with _terminate_as_interrupt():
            return args.func(args)
    except Cancelled as exc:
        print(f"lookalike: {exc}", file=sys.stderr)
        return EXIT_CANCELLED
    except UserError as exc:
        print(f"lookalike: {exc}", file=sys.stderr)
        return EXIT_USER
    except EnvironmentProblem as exc:
        print(f"lookalike: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except LookalikeError as exc:
        print(f"lookalike: {exc}", file=sys.stderr)
        return 1
    except (sqlite3.DatabaseError, OSError) as exc:
        # The ones no layer typed (a decoder process's catalog read, a write outside engine):
        # a damaged catalog or a full disk is still one line, not a traceback.
        problem = _environment_problem(exc)
        if problem is None:
            raise
        print(f"lookalike: {problem}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except KeyboardInterrupt:
        print("lookalike: interrupted", file=sys.stderr)
        return EXIT_CANCELLED


def _environment_problem(exc: BaseException) -> EnvironmentProblem | None:
    if isinstance(exc, sqlite3.DatabaseError):
        from engine.sql import catalog_problem  # only on this error path

        return catalog_problem(exc, None)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return environment_problem(exc, f"write {exc.filename or 'a file'}")
    return None


if __name__ == "__main__":
    sys.exit(main())
