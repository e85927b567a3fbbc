"""Hostile tries, rerun with real faults: the figure of the "Reliability 2" issue.

Kills (``kill -9`` of drivers, of a Ray driver, of one of two drivers sharing a study), trials
that end their process (segfault, ``os._exit``, ``SystemExit``), storage faults (a file size
limit, a read-only bind mount, a damaged file, a lost ``-wal``), reading as an unprivileged
user, configs that name code, YAML alias bombs, stalled sockets against the dashboard and the
Ray driver's gate, and fuzzed arguments. Each try's outcome is one of: clear error, recorded
(handled as documented), raw traceback, silent, plus lost finished trials and leftovers
(processes or files). The goal: 0 raw, 0 silent, 0 lost, 0 leftovers.

    python benchmarks/hostile.py [--quick] [--only 1,5,9] [--out benchmarks/results/hostile.json]

The scenarios are in ``benchmarks/_hostile_processes.py`` and ``_hostile_files.py``. Mounts
and ``setpriv`` need root; a scenario that cannot run here is skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _hostile_cases import OUTCOMES, SCENARIOS, Row

RESULTS = Path(__file__).resolve().parent / "results" / "hostile.json"


def table(rows: list[dict]) -> str:
    head = ["scenario", "tries", *OUTCOMES, "s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        name = r["scenario"] + (f" (skipped: {r['skipped']})" if r["skipped"] else "")
        lines.append("| " + " | ".join([name, str(r["tries"]), *(str(r[k]) for k in OUTCOMES),
                                        str(r["seconds"])]) + " |")
    total = {k: sum(r[k] for r in rows) for k in ("tries", *OUTCOMES)}
    lines.append("| **total** | " + " | ".join(str(total[k]) for k in ("tries", *OUTCOMES))
                 + " | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer tries (a few minutes)")
    parser.add_argument("--only", default="", help="scenario numbers, e.g. 1,5,9")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    only = {int(x) for x in args.only.split(",") if x.strip()}
    start = time.monotonic()
    load = os.getloadavg()
    rows = []
    for number, scenario in enumerate(SCENARIOS, 1):
        if only and number not in only:
            continue
        t0 = time.monotonic()
        print(f"[{time.strftime('%H:%M:%S')}] {scenario.__name__} ...", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"hostile{number}-") as tmp:
            try:
                row = scenario(Path(tmp), args.quick)
            except Exception as exc:  # the benchmark's own failure: shown, never hidden
                row = Row(f"{number} {scenario.__name__}")
                row.add("raw", {"benchmark_error": traceback.format_exc()[-2000:]})
                row.notes.append(f"the scenario itself failed: {exc!r}"[:300])
        row.seconds = time.monotonic() - t0
        rows.append(row.as_dict())
        for note in row.notes:
            print(f"    {note}", flush=True)
    result = {"command": " ".join([os.path.relpath(sys.executable), *sys.argv]),
              "quick": args.quick, "seconds": round(time.monotonic() - start, 1),
              "cpus": os.cpu_count(), "load_before": [round(x, 2) for x in load],
              "load_after": [round(x, 2) for x in os.getloadavg()],
              "euid": os.geteuid(), "python": platform.python_version(),
              "goal": "0 raw, 0 silent, 0 lost, 0 leftovers", "rows": rows}
    print()
    print(table(rows))
    print(f"\n{result['seconds']} s; load average {result['load_before']} -> "
          f"{result['load_after']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
