"""The scenarios of ``benchmarks/hostile.py``: each is a function ``(root, quick) -> Row`` that
makes real faults (processes killed with signals, a file size limit, read-only bind mounts, an
unprivileged user, real sockets) and counts the outcome of every try.

Outcomes of a try:

- ``clear``: a clear error (one ``torchnas: error:`` line, or a ``tn.TorchnasError`` with a
  message naming the cause), nothing recorded lost;
- ``recorded``: the fault was handled as documented (the trial recorded FAILED/INTERRUPTED with
  its reason and the search went on, the study resumed, a peer was cut, a read succeeded);
- ``raw``: a raw traceback, or an exit without a message;
- ``silent``: a wrong result without a word (a fresh start over a study, code run from a
  config, a duplicated trial, a trial left RUNNING for good, a request that hangs);
- ``lost``: finished trials lost or changed (counted in trials, not tries);
- ``leftovers``: processes alive or files created that should not be (counted in items).
"""
from __future__ import annotations

from _hostile_common import OUTCOMES, Row
from _hostile_files import (
    alias_bombs,
    configs_are_code,
    dashboard,
    fuzzed_inputs,
    lost_wal,
    ray_gate,
    read_only_viewing,
    storage_faults,
)
from _hostile_processes import (
    inline_deaths,
    kill_driver,
    many_drivers,
    ray_kill,
    shared_dead_driver,
)

__all__ = ["OUTCOMES", "SCENARIOS", "Row"]

SCENARIOS = [kill_driver, many_drivers, ray_kill, inline_deaths, storage_faults, lost_wal,
             read_only_viewing, shared_dead_driver, configs_are_code, alias_bombs, dashboard,
             ray_gate, fuzzed_inputs]
