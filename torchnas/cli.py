"""The ``torchnas`` command: ``search CONFIG``, ``space CONFIG``, ``trials DB``, ``best DB``,
``export DB OUT``, ``plot DB OUT``, ``repair DB OUT``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from torchnas import _supervise as supervise
from torchnas import data as tn_data
from torchnas import oneshot
from torchnas._cli_read import (
    cmd_best,
    cmd_dashboard,
    cmd_plot,
    cmd_repair,
    cmd_trials,
    open_study,
)
from torchnas._util.config import (
    apply_overrides,
    check_keys,
    code_refs,
    dump_config,
    load_config,
    resolve_object,
    short_repr,
)
from torchnas._util.errors import StorageError, TorchnasError
from torchnas._util.table import format_metric
from torchnas.evaluation import Trainer
from torchnas.evaluation._callbacks import Callback
from torchnas.report._figure import KINDS
from torchnas.search._model_search import ModelSearch
from torchnas.search._settings import differences
from torchnas.search._train_fn import function_name
from torchnas.storage import SQLiteJournal
from torchnas.study._trial import TrialState

__all__ = ["ONEDNN_CACHE", "build_search", "main"]

#: oneDNN primitive cache capacity the CLI sets unless ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` is.
ONEDNN_CACHE = 256


def build_search(config: dict[str, Any], where: str = "config") -> ModelSearch:
    """A :class:`ModelSearch` from a config mapping, every key checked first."""
    check_keys(where, config, ModelSearch)
    kwargs = dict(config)
    if "space" not in kwargs or "data" not in kwargs:
        missing = [k for k in ("space", "data") if k not in kwargs]
        raise TorchnasError(f"{where}: missing required key(s) {missing}")
    if isinstance(kwargs["space"], str) and ":" in kwargs["space"]:
        kwargs["space"] = resolve_object(f"{where}: space", kwargs["space"])
    if isinstance(kwargs.get("train_fn"), str):  # package.module:function, as space is
        kwargs["train_fn"] = resolve_object(f"{where}: train_fn", kwargs["train_fn"])
    kwargs["data"] = _data(kwargs["data"], f"{where}: data")
    trainer = kwargs.get("trainer")
    if isinstance(trainer, dict):
        check_keys(f"{where}: trainer", trainer, Trainer)
        kwargs["trainer"] = Trainer(**trainer)
    return ModelSearch(**kwargs)


def _data(spec: Any, where: str) -> Any:
    if isinstance(spec, str):
        return _loaded(where, spec, resolve_object(where, spec)()) if ":" in spec else spec
    if isinstance(spec, dict):
        sources = [k for k in ("name", "files", "folder") if k in spec]
        if len(sources) > 1:
            raise TorchnasError(f"{where}: give one of {sources}, not several")
        if sources in (["files"], ["folder"]):
            return _data_from_paths(spec, sources[0], where)
        if not isinstance(spec.get("name"), str):
            raise TorchnasError(f"{where}: a data mapping needs 'name' ({tn_data.available()}), "
                                f"'files' (tn.data.from_files) or 'folder' "
                                f"(tn.data.from_folder)")
        args = {k: v for k, v in spec.items() if k != "name"}
        if ":" in spec["name"]:
            return _loaded(where, spec["name"], resolve_object(where, spec["name"])(**args))
        return tn_data.load(spec["name"], **args)
    raise TorchnasError(f"{where}: expected a dataset name or {{name: ..., ...}}, "
                        f"got {short_repr(spec)}")


def _data_from_paths(spec: dict[str, Any], key: str, where: str) -> tn_data.Data:
    """``{files: PATH, ...}`` through tn.data.from_files, ``{folder: ROOT, ...}`` through
    tn.data.from_folder: the other keys are its keyword arguments (``files`` may be a list
    ``[inputs.npy, labels.npy]``)."""
    load = tn_data.from_files if key == "files" else tn_data.from_folder
    positional = ("path", "labels") if key == "files" else ("root",)
    args = {k: v for k, v in spec.items() if k != key}
    taken = [k for k in positional if k in args]
    if taken:
        raise TorchnasError(f"{where}: unknown key {taken[0]!r} (the {key!r} key holds it)")
    check_keys(where, args, load)
    paths = spec[key]
    paths = list(paths) if isinstance(paths, list) and key == "files" else [paths]
    if not 1 <= len(paths) <= len(positional) or not all(isinstance(p, str) for p in paths):
        raise TorchnasError(f"{where}: {key!r} must be a path"
                            f"{' or a list [inputs, labels]' if key == 'files' else ''}, "
                            f"got {short_repr(spec[key])}")
    return load(*paths, **args)


def _loaded(where: str, ref: str, data: Any) -> tn_data.Data:
    """What a ``module:function`` data loader returned, which must be a torchnas Data."""
    if not isinstance(data, tn_data.Data):
        raise TorchnasError(f"{where}: {ref} returned {type(data).__name__}, not a torchnas "
                            f"Data (tn.data.from_tensors / tn.data.from_datasets build one)")
    return data


#: :class:`ModelSearch` keywords that say how one run goes, not what its study searches: left
#: out of the resolved config (running it shows progress, and refuses other settings again;
#: callbacks only watch a run, and may be objects YAML cannot hold).
RUN_ONLY = ("progress", "override_settings", "callbacks")


def resolved_config(search: ModelSearch, config: dict[str, Any]) -> dict[str, Any]:
    """The config with every default filled in (written beside the results): each keyword of
    :meth:`ModelSearch.get_params` but :data:`RUN_ONLY`, as the config gave it (else as the
    search holds it), the trainer with all its arguments (none with a ``train_fn``, written as
    ``package.module:function``), and the study's name, objectives and strategy as stored."""
    out = {key: config.get(key, value) for key, value in search.get_params().items()
           if key not in RUN_ONLY}
    if search.train_fn is None:
        out["trainer"] = search.objective.trainer.get_params()
    elif not isinstance(out.get("train_fn"), str):
        out["train_fn"] = function_name(search.train_fn)
    if search.study is not None:
        out["name"] = search.study.name
        out["objectives"] = search.study.objectives
        stored = search.study.config["strategy"]
        # a one-shot study stores its method's spec; one made before stored a placeholder
        if oneshot.is_method(stored) or not oneshot.is_method(search.strategy):
            out["strategy"] = stored
    return json.loads(json.dumps(out, default=str))


def _cmd_search(args: argparse.Namespace) -> int:
    config = apply_overrides(load_config(args.config), args.set)
    search = build_search(config, where=str(args.config))
    _refuse_a_lost_study(search)
    if getattr(args, "supervised", False):
        given = search.callbacks
        given = [given] if isinstance(given, (str, Mapping, Callback)) else list(given or ())
        search.callbacks = [*given, supervise.reporter()]
    try:
        search.run()
    except KeyboardInterrupt:
        study = search.study
        waiting = 0 if study is None else sum(t.state is TrialState.INTERRUPTED
                                              for t in study.trials)
        print(f"torchnas: interrupted; {waiting} running trial(s) marked interrupted. Run the "
              f"same command again to resume (they run first).", file=sys.stderr, flush=True)
        return 130
    if search.storage:
        study = search.results.study  # the one run() opened
        out = _config_beside(Path(str(search.storage).removeprefix("sqlite:///")), study.name)
        stored, now = study.settings, search.objective.settings()
        if out.exists() and stored is not None and differences(stored, now):
            print(f"{out} keeps the study's own settings (this run overrode them)")
            return 0
        partial = out.with_name(out.name + ".partial")  # a kill never leaves half a file
        try:
            partial.write_text(dump_config(resolved_config(search, config)), encoding="utf-8")
            os.replace(partial, out)
        except OSError as exc:  # the study itself is complete and kept
            cause = exc.strerror or exc
            raise StorageError(f"{partial}: cannot write the resolved config ({cause}); the "
                               f"study in {search.storage} keeps every trial") from None
        print(f"Resolved config written to {out}")
    return 0


def _refuse_a_lost_study(search: ModelSearch) -> None:
    """No silent fresh start: the config a finished search wrote beside an existing storage
    file says its study existed, yet the file no longer holds it (a lost ``-wal`` file, a file
    replaced by another)."""
    if not search.storage or not isinstance(search.storage, (str, os.PathLike)):
        return
    db = Path(os.fspath(search.storage).removeprefix("sqlite:///"))
    beside = _config_beside(db, search.study_name)
    if not (db.is_file() and beside.is_file()):
        return
    try:
        journal = SQLiteJournal(db, read_only=True)
        try:
            lost = journal.find_study(search.study_name) is None
        finally:
            journal.close()
    except (ValueError, TorchnasError):  # not a torchnas file, damaged: opening it says so
        return
    if lost:
        raise StorageError(
            f"storage {db} holds no study {search.study_name!r}, but {beside} says a search of "
            f"it finished there: the file lost its events (a deleted {db.name}-wal file, or a "
            f"file replaced by another). Nothing was changed. Restore the file (with its -wal), "
            f"or move {beside.name} away to start a new study of that name")


def _config_beside(db: Path, study: str) -> Path:
    """Where ``search`` writes the resolved config of study ``study`` stored in ``db``."""
    name = re.sub(r"[^\w.-]", "_", study)  # a file name, whatever the study's
    return db.with_name(f"{db.stem}.{name}.config.yaml")


def _cmd_export(args: argparse.Namespace) -> int:
    study = open_study(args)
    config_file = args.config or _config_beside(Path(args.db), study.name)
    if not config_file.exists():
        raise TorchnasError(f"{config_file} not found: pass --config with the search's YAML "
                            "config (the space and data rebuild the model)")
    config = {k: v for k, v in load_config(config_file).items() if k != "export_to"}
    refs = [] if args.config or args.trust_config else code_refs(config)
    if refs:  # a config is code: the one beside a DB runs only when the user says so
        key, ref = refs[0]
        raise TorchnasError(f"{config_file}: {key}: {short_repr(ref)} names code to import and "
                            f"run; pass --trust-config if you trust this file (or --config "
                            f"with your own)")
    config.update(storage=str(args.db), name=study.name, progress=False)
    search = build_search(config, where=str(config_file))
    search.study = study
    trial = None
    if args.trial is not None:
        done = {t.number: t for t in study.trials if t.state is TrialState.COMPLETE}
        if args.trial not in done:
            raise TorchnasError(f"trial {args.trial} of {study.name!r} is not a complete trial "
                                f"(complete: {sorted(done) or 'none'})")
        trial = done[args.trial]
    chosen = trial or search.best_trial
    if args.no_retrain and not search.artifacts.has(chosen.number):
        raise TorchnasError(
            f"trial {chosen.number}'s trained weights were not kept in {search.artifacts.root} "
            f"(kept: {search.artifacts.kept() or 'none'}; the search keeps its best "
            f"keep_models trials): export it without --no-retrain to train it again")
    model = search.best_model(retrain=not args.no_retrain, trial=chosen)
    path = search.export(args.out, model, trial=chosen)
    if args.no_retrain:
        tested = f", its trained weights from {search.artifacts.root} (not retrained)"
    elif search.retrain_report is not None and search.retrain_report.chosen == "trial":
        tested = (", the retrain stayed clearly worse than the trial: its own trained model "
                  "was written")
    else:
        shown = ", ".join(f"{k.removeprefix('test_').replace('_', ' ')} {format_metric(v, k)}"
                          for k, v in (search.test_metrics or {}).items())
        tested = f", retrained on train+val: test {shown}" if shown else ""
    print(f"Trial {chosen.number} of {study.name!r} written to {path}{tested}")
    return 0


def _cmd_space(args: argparse.Namespace) -> int:
    config = apply_overrides(load_config(args.config), args.set)
    search = build_search(config, where=str(args.config))
    print(search.check().summary())
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torchnas", description="Neural architecture search.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (("search", "run the search a YAML config describes"),
                           ("space", "print the config's search space: labels, domains, size")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("config", type=Path)
        p.add_argument("--set", "-s", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key (YAML value; dotted keys: trainer.epochs=5)")
    for name, helptext in (("trials", "list a study's trials"), ("best", "show the best trial")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("db", help="the study's SQLite file")
        p.add_argument("--name", help="the study (needed when the file holds several)")
        if name == "trials":
            p.add_argument("--state", choices=[s.value for s in TrialState],
                           help="only the trials in this state")
            p.add_argument("--wide", action="store_true", help="architectures and errors in "
                           "full (the table cuts them to 50 characters)")
            p.add_argument("--json", action="store_true", help="print the trials as JSON: "
                           "metrics, arch, error, budget, times, intermediate reports")
            p.add_argument("--compare", metavar="N,M", help="chosen trials side by side: "
                           "decisions (* where they differ), state, metrics")
        else:
            p.add_argument("--json", action="store_true", help="print JSON")
    p = sub.add_parser("export", help="retrain the best (or a chosen) trial and write it to a "
                                      "file: .pt, .onnx, .pt2, .ts")
    p.add_argument("db", help="the study's SQLite file")
    p.add_argument("out", type=Path, help="the file to write; its suffix picks the format")
    p.add_argument("--name", help="the study (needed when the file holds several)")
    p.add_argument("--trial", type=int, help="export this trial instead of the best")
    p.add_argument("--config", type=Path, help="the search's YAML config (default: the "
                                                  "resolved config written beside the DB)")
    p.add_argument("--trust-config", action="store_true",
                   help="run the functions the config beside the DB names (a config is code: "
                        "only for a file you trust)")
    p.add_argument("--no-retrain", action="store_true",
                   help="write the trial's own trained model (its weights kept beside the "
                        "study) instead of retraining it on train+val")
    p = sub.add_parser("plot", help="draw a study to an image file (needs matplotlib)")
    p.add_argument("db", help="the study's SQLite file")
    p.add_argument("out", type=Path, help="the image to write; its suffix picks the format")
    p.add_argument("--name", help="the study (needed when the file holds several)")
    p.add_argument("--kind", choices=list(KINDS), default="history",
                   help="; ".join(f"{k}: {v}" for k, v in KINDS.items()))
    p.add_argument("--metric", help="the metric (default: the first objective; pareto: X,Y)")
    p.add_argument("--label", help="slice: the decision (default: the most important one)")
    p.add_argument("--trials", help="compare: the trial numbers, e.g. 3,7")
    p.add_argument("--trial", type=int, help="arch: the trial whose network to draw")
    p = sub.add_parser("dashboard", help="watch a study live in the browser (read-only)")
    p.add_argument("db", help="the study's SQLite file")
    p.add_argument("--host", default="127.0.0.1", help="the address to serve on")
    p.add_argument("--port", type=int, default=8080, help="the port (0: any free one)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a further name requests may give as Host (a reverse proxy's; "
                   "loopback names and --host are always allowed); repeatable")
    p = sub.add_parser("repair", help="copy every event a damaged study file still holds "
                                      "into a new file")
    p.add_argument("db", help="the damaged SQLite file (only read)")
    p.add_argument("out", type=Path, help="the new file to write")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``torchnas`` command; returns the exit code."""
    # oneDNN (torch's CPU convolutions) caches the kernels of every layer shape it meets, up to
    # 1024: a search meets new shapes all the time and grows by ~70 MB over 200 trials. 256
    # keeps that to ~20 MB at the same speed (benchmarks/memory.py); read before the first
    # convolution, so set here; a value the user set wins.
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_CACHE))
    # a config's ``package.module:build`` may live in the working directory, as with
    # ``python -m``; an installed console script does not look there by itself
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    child = supervise.child_setup()  # a supervised search: dies with its supervisor
    args = _parser().parse_args(argv)
    if argv is None and not child and args.command == "search" and supervise.wanted():
        child = supervise.split(sys.argv[1:])  # the search goes on in a supervised child
    args.supervised = child
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    commands = {"search": _cmd_search, "space": _cmd_space, "trials": cmd_trials,
                "best": cmd_best, "export": _cmd_export, "plot": cmd_plot,
                "dashboard": cmd_dashboard, "repair": cmd_repair}
    code = 1  # an exception that escapes: Python's traceback and exit code 1
    try:
        code = _run(commands[args.command], args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        raise
    finally:
        if child:  # the search ended as a search ends: the supervisor passes its code on
            supervise.tell(f"exit {code}")
    return code


def _run(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return command(args)
    except KeyboardInterrupt:  # search handles its own; the others have nothing to save
        print("torchnas: interrupted", file=sys.stderr)
        return 130
    except (TorchnasError, ValueError) as exc:
        print(f"torchnas: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
