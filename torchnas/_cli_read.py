"""The ``torchnas`` commands that read a study: ``trials``, ``best``, ``plot``, ``dashboard``
and ``repair``. They open storage read-only and run no code named in a file."""

from __future__ import annotations

import argparse
import json
import sqlite3
from pathlib import Path
from typing import Any

from torchnas._util.errors import TorchnasError
from torchnas._util.table import format_metric
from torchnas.report._console import leaderboard
from torchnas.report._trials import format_trials
from torchnas.storage import repair
from torchnas.storage._artifacts import ArtifactStore, artifacts_dir
from torchnas.study import Study, load_study

__all__ = ["cmd_best", "cmd_dashboard", "cmd_plot", "cmd_repair", "cmd_trials", "open_study",
           "trial_numbers"]


def open_study(args: argparse.Namespace) -> Study:
    """The study the reading commands look at, opened read-only: they never write storage."""
    if not Path(args.db).exists():
        raise TorchnasError(f"no such storage file: {args.db}")
    try:
        return load_study(args.db, name=args.name, read_only=True)
    except sqlite3.DatabaseError as exc:
        raise TorchnasError(f"{args.db}: not a torchnas SQLite storage ({exc})") from None
    except ValueError as exc:  # load_study's words are the Python API's: say the CLI's
        raise TorchnasError(_cli_words(str(exc))) from None


#: Python API phrases in library errors the reading commands print, and the CLI's own words.
_CLI_WORDS = (("name one of the studies", "pass --name with one of the studies"),)


def _cli_words(message: str) -> str:
    """``message`` with the Python API's phrases said as the CLI's options."""
    for api, cli in _CLI_WORDS:
        message = message.replace(api, cli)
    return message


def cmd_trials(args: argparse.Namespace) -> int:
    if args.compare:
        from torchnas.report._analysis import compare_trials

        print(compare_trials(open_study(args), trial_numbers(args.compare, "--compare")))
        return 0
    print(format_trials(open_study(args), state=args.state, wide=args.wide, as_json=args.json))
    return 0


def cmd_best(args: argparse.Namespace) -> int:
    study = open_study(args)
    front = study.pareto_front() if len(study.objectives) > 1 else []
    if len(study.objectives) > 1 and not front:
        raise ValueError(f"study {study.name!r} has no complete feasible trial yet")
    best = study.best_trial if len(study.objectives) == 1 else front[0]
    record: dict[str, Any] = {"study": study.name, "trial": best.number, "metrics": best.metrics,
                              "arch": best.arch, "key": best.key}
    if front:  # several objectives: the whole front, best first objective first
        record["hypervolume"] = study.hypervolume()
        record["pareto_front"] = [{"trial": t.number, "metrics": t.metrics, "arch": t.arch,
                                   "key": t.key} for t in front]
    kept = ArtifactStore(artifacts_dir(args.db, study.name))
    model_summary = kept.meta(best.number).get("summary") if kept.has(best.number) else None
    if kept.has(best.number):
        record["weights"] = str(kept.weights_path(best.number))
        record["summary"] = model_summary
    if args.json:
        print(json.dumps(record, indent=2))
    elif front:
        print(f"Pareto front of {study.name!r}: {len(front)} trials, hypervolume "
              f"{record['hypervolume']:.6g} (reference just past the worst trial)")
        print(leaderboard(front, study.objectives, (), top=len(front)))
    else:
        print(f"Best trial of {study.name!r}: #{best.number}")
        for k, v in best.metrics.items():
            print(f"  {k}: {format_metric(v, k)}")
        print("Architecture:")
        for k, v in best.arch.items():
            print(f"  {k}: {v}")
        if model_summary:
            print(f"Model (trained weights in {record['weights']}):\n{model_summary}")
        elif "weights" not in record:
            print("(its trained weights were not kept: `torchnas export` retrains it)")
    return 0


def trial_numbers(text: str | None, option: str = "--trials") -> list[int]:
    try:
        return [int(n) for n in text.split(",")] if text else []
    except ValueError:
        raise TorchnasError(f"{option} takes trial numbers separated by commas (3,7), got "
                            f"{text!r}") from None


def cmd_plot(args: argparse.Namespace) -> int:
    study = open_study(args)
    try:  # a bare Figure draws with Agg when saved: no display, no pyplot state
        import matplotlib  # noqa: F401
    except ImportError:
        raise TorchnasError("plots need matplotlib: pip install 'torchnas[plot]'") from None
    from torchnas.report._figure import draw

    try:
        fig = draw(study, args.kind, metric=args.metric, label=args.label,
                   trials=trial_numbers(args.trials), trial=args.trial)
    except ValueError as exc:  # a metric, label or trial the study lacks
        text = str(exc)
        raise TorchnasError(f"--metric {args.metric}: {text}" if args.metric and "metric" in text
                            else text) from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(args.out)
    except ValueError as exc:  # matplotlib: "Format 'x' is not supported (...)"
        raise TorchnasError(f"{args.out}: {exc}") from None
    print(f"{args.kind} plot of {study.name!r} written to {args.out}")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from torchnas.report._dashboard import Dashboard

    if not Path(args.db).exists():
        raise TorchnasError(f"no such storage file: {args.db}")
    try:
        server = Dashboard(args.db, host=args.host, port=args.port,
                           allowed_hosts=args.allow_host)
    except sqlite3.DatabaseError as exc:
        raise TorchnasError(f"{args.db}: not a torchnas SQLite storage ({exc})") from None
    except OSError as exc:
        raise TorchnasError(f"cannot serve on {args.host}:{args.port}: {exc}") from None
    print(f"torchnas dashboard of {args.db} at {server.url} (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    saved = repair(args.db, args.out)
    print(f"{saved.events} events of {len(saved.studies)} studies ({', '.join(saved.studies)}) "
          f"copied to {args.out}; {saved.lost} could not be read")
    return 0
