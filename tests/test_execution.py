"""Executors: trials in worker processes asking the driver for every decision; a dead worker
named by its signal or exit code; failures in a row; asynchronous search without duplicates; bad
settings refused before the first trial; nothing unpickles files or listens on the network. (The
contract every executor keeps, faults, retries and Ctrl-C: tests/test_contract_executors.py;
threads, GPUs and memory across trials: tests/test_resources.py.)

Objectives are module-level functions: worker processes import them by name.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import math
import os
import re
import tempfile
import threading
import time
from multiprocessing import Pipe
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import torchnas as tn
from torchnas.execution import ExecutorError, ProcessExecutor, device_plan
from torchnas.execution._pool import Session
from torchnas.execution._protocol import recv, send
from torchnas.execution._worker import RemoteTrial, serve
from torchnas.testing._objectives import always_fails, faulty

COMPLETE, FAILED, INTERRUPTED = tn.TrialState.COMPLETE, tn.TrialState.FAILED, \
    tn.TrialState.INTERRUPTED
ROOT = Path(__file__).resolve().parents[1]


def study(**kw: Any) -> tn.Study:
    kw.setdefault("objectives", {"acc": "max"})
    kw.setdefault("strategy", "random")
    kw.setdefault("seed", 3)
    return tn.Study(**kw)


# -- objectives (module level: workers import them) ---------------------------------------------
def plain(hp: tn.HP) -> dict[str, float]:
    x = hp.int("x", 0, 1000)
    act = hp.choice("act", ["relu", "gelu", "tanh"])
    with hp.scope("block"):
        lr = hp.float("lr", 1e-4, 1e-1, log=True)
    assert hp.trial is not None
    hp.trial.report(1, {"acc": x / 2000})
    time.sleep(0.02)
    return {"acc": x / 1000 + lr + (act == "gelu"), "pid": os.getpid(),
            "threads": torch.get_num_threads()}


def grid_space(hp: tn.HP) -> float:
    a = hp.choice("a", [0, 1, 2])
    b = hp.choice("b", ["p", "q"]) if a < 2 else "none"
    c = hp.bool("c")
    time.sleep(0.02)
    return a + (b == "q") + c


def deduplicated(hp: tn.HP) -> float:
    """A space of six architectures; repeats are drawn again, as ``ModelSearch`` does."""
    assert hp.trial is not None
    for _ in range(50):
        hp.choice("a", [1, 2, 3])
        hp.bool("b")
        if hp.trial.duplicate_of() is None:
            break
        hp = hp.trial.redraw()
    hp.trial.commit()
    time.sleep(0.05)
    return float(hp.get("a") + hp.get("b"))


class Unloadable:
    """Pickles fine here; a worker process dies loading it."""

    def __call__(self, hp: tn.HP) -> float:
        return 1.0

    def __reduce__(self) -> Any:
        return (os._exit, (9,))


class BadState:
    """Pickles fine here; loading it raises in the worker."""

    def __init__(self) -> None:
        self.state = 1

    def __call__(self, hp: tn.HP) -> float:
        return 1.0

    def __setstate__(self, state: Any) -> None:
        raise RuntimeError("cannot be restored here")


def tiny_space(hp: tn.HP) -> nn.Module:
    width = hp.choice("width", [8, 16, 32])
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 4))


def tiny_data(n: int = 64, seed: int = 0) -> tn.data.Data:
    g = torch.Generator().manual_seed(seed)
    return tn.data.from_tensors((torch.randn(n, 1, 8, 8, generator=g), torch.arange(n) % 4),
                                (torch.randn(32, 1, 8, 8, generator=g), torch.arange(32) % 4))


def _no_workers_left(timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _worker_pids():
            return True
        time.sleep(0.1)
    return False


def _parent(pid: int) -> int:
    with contextlib.suppress(OSError, IndexError, ValueError):
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if stat[0] not in ("Z", "X"):
            return int(stat[1])
    return -1


def _worker_pids() -> set[int]:
    """Live grandchildren of this process: workers forked by its forkserver."""
    pids = [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]
    me = os.getpid()
    children = {p for p in pids if _parent(p) == me}
    return {p for p in pids if _parent(p) in children}


# -- the process executor -----------------------------------------------------------------------
def test_two_workers_run_every_trial_and_the_same_seed_gives_the_same_trials() -> None:
    parallel = study()
    parallel.optimize(plain, trials=12, workers=2, executor="process")
    trials = parallel.trials
    assert [t.number for t in trials] == list(range(12))
    assert all(t.state is COMPLETE and t.attempts == 1 for t in trials)
    assert len({t.metrics["pid"] for t in trials}) <= 2  # (the other test shows them overlap)
    assert {t.metrics["threads"] for t in trials} == {max(1, len(os.sched_getaffinity(0)) // 2)}
    assert all(list(t.arch) == ["x", "act", "block/lr"] for t in trials)
    assert all(t.intermediate == ((1, {"acc": t.arch["x"] / 2000}),) for t in trials)
    inline = study()
    inline.optimize(plain, trials=12)
    assert [t.arch for t in trials] == [t.arch for t in inline.trials]
    assert [t.metrics["acc"] for t in trials] == [t.metrics["acc"] for t in inline.trials]
    again = study()
    again.optimize(plain, trials=12, executor=ProcessExecutor(workers=2))
    assert [t.arch for t in again.trials] == [t.arch for t in trials]


def test_a_dead_worker_is_named_by_its_signal_or_exit_code() -> None:
    s = study()
    kinds = ["segv", "exit", "ok"]
    for kind in kinds:
        s.enqueue({"kind": kind})
    s.optimize(faulty, trials=len(kinds), workers=2)
    assert [t.arch["kind"] for t in s.trials] == kinds
    segv, exited, ok = s.trials
    assert segv.state is exited.state is FAILED and ok.state is COMPLETE
    assert (segv.error or "").startswith("its worker process died (killed by signal SIGSEGV)")
    assert (exited.error or "").startswith("its worker process died (exit code 7)")


def test_too_many_failures_in_a_row_stop_and_leave_running_trials_to_run_again() -> None:
    s = study()
    with pytest.raises(tn.TooManyFailures, match=r"3 trials failed in a row.*this block is br"):
        s.optimize(always_fails, trials=20, workers=2, max_failures=3)
    states = collections.Counter(t.state for t in s.trials)
    assert states[FAILED] == 3 and set(states) <= {FAILED, INTERRUPTED}
    assert _no_workers_left()


def test_a_cli_search_whose_loss_diverges_stops_with_a_clear_message(tmp_path: Path) -> None:
    import io

    from torchnas.cli import main

    config = tmp_path / "c.yaml"  # no lr decision: every trial trains at lr 1e30
    config.write_text(f"space: mlp\ndata: digits\nspace_kwargs: {{lr: null}}\n"
                      f"trainer: {{epochs: 1, lr: 1.0e+30}}\ntrials: 6\nmax_failures: 2\n"
                      f"progress: false\nstorage: {tmp_path / 's.db'}\n")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["search", str(config)])
    assert code == 2
    assert re.search(r"torchnas: error: the search stopped: 2 trials failed in a row "
                     r"\(max_failures=2\); last error: FloatingPointError: training loss is "
                     r"(nan|inf) in epoch 1", err.getvalue()), err.getvalue()
    trials = tn.load_study(str(tmp_path / "s.db")).trials
    assert [t.state for t in trials] == [FAILED, FAILED]


def test_a_callback_interrupt_leaves_running_trials_to_run_first_on_resume(
        tmp_path: Path) -> None:
    s = study()
    objective = functools.partial(rendezvous, str(tmp_path))  # the first two trials overlap

    def stop(study: tn.Study, trial: tn.FrozenTrial) -> None:
        # another trial is running now
        if any(t.state is tn.TrialState.RUNNING for t in study.records.values()):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        s.optimize(objective, trials=20, workers=2, callbacks=[stop])
    interrupted = [t.number for t in s.trials if t.state is INTERRUPTED]
    assert interrupted and all(t.state in (COMPLETE, INTERRUPTED) for t in s.trials)
    s.optimize(objective, trials=len(interrupted), workers=2)
    for n in interrupted:
        assert s.trials[n].state is COMPLETE and s.trials[n].attempts == 2
    reference = study()
    reference.optimize(objective, trials=len(s.trials))
    assert [t.arch for t in s.trials] == [t.arch for t in reference.trials]


# -- asynchronous search: proposals while trials run, none twice --------------------------------
def test_grid_in_parallel_proposes_each_architecture_once() -> None:
    s = study(strategy="grid")
    s.optimize(grid_space, workers=3)  # until the grid is exhausted
    archs = [t.key for t in s.trials]
    assert len(archs) == len(set(archs)) == 10  # (2 + 2 + 1) values of (a, b) x 2 of c
    assert all(t.state is COMPLETE for t in s.trials)


def test_random_in_parallel_never_repeats_while_new_architectures_remain() -> None:
    s = study(seed=11)
    s.optimize(deduplicated, trials=6, workers=3)
    keys = [t.key for t in s.trials]
    assert len(set(keys)) == 6


def rendezvous(marks: str, hp: tn.HP) -> float:
    """Decides, then waits (up to 60 s) until two trials have decided."""
    x = hp.int("x", 0, 1000)
    assert hp.trial is not None
    (Path(marks) / str(hp.trial.number)).touch()
    deadline = time.monotonic() + 60
    while len(list(Path(marks).iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    return x / 1000


def test_a_strategy_sees_running_trials_as_pending(tmp_path: Path) -> None:
    seen: list[list[dict[str, Any]]] = []

    class Spy(tn.strategies.RandomStrategy):
        def suggest(self, ctx: tn.strategies.AskContext, label: str, domain: Any) -> Any:
            seen.append([dict(p) for p in ctx.pending])
            return super().suggest(ctx, label, domain)

    s = study(strategy=Spy())
    s.optimize(functools.partial(rendezvous, str(tmp_path)), trials=2, workers=2)
    first, second = seen  # one decision each; the second one saw the first trial's
    assert all(arch == {} for arch in first), seen  # (the other trial may not have decided)
    decided = [arch for arch in second if arch]
    assert len(decided) == 1 and decided[0] in [dict(t.arch) for t in s.trials], seen


# -- workers that cannot start ------------------------------------------------------------------
def test_an_objective_that_cannot_be_pickled_is_refused_before_any_trial() -> None:
    s = study()
    with pytest.raises(tn.ConfigError, match=r"cannot be pickled.*module level"):
        s.optimize(lambda hp: 1.0, trials=2, workers=2)
    assert s.trials == []


@pytest.mark.parametrize(("objective", "message"), [
    (BadState(), r"cannot load the objective: RuntimeError: cannot be restored here"),
    (Unloadable(), r"worker processes die as they start: .*exit code 9"),
])
def test_workers_that_cannot_start_stop_the_search(objective: Any, message: str) -> None:
    s = study()
    with pytest.raises(ExecutorError, match=message):
        s.optimize(objective, trials=2, workers=2)
    assert s.trials == []


# -- devices and settings -----------------------------------------------------------------------
def test_device_plan_splits_threads_and_gpus() -> None:
    assert device_plan(2, None, [], cores=8) == [
        {"threads": 4, "cuda_visible_devices": None, "memory_fraction": None}] * 2
    assert [p["threads"] for p in device_plan(3, None, [], cores=2)] == [1, 1, 1]
    one_each = device_plan(2, None, ["0", "1"], cores=16)
    assert [p["cuda_visible_devices"] for p in one_each] == ["0", "1"]
    shared = device_plan(4, 0.5, ["3", "5"], cores=16)  # as CUDA_VISIBLE_DEVICES names them
    assert [p["cuda_visible_devices"] for p in shared] == ["3", "5", "3", "5"]
    assert {p["memory_fraction"] for p in shared} == {0.5}
    assert [p["cuda_visible_devices"] for p in device_plan(2, 2, list("0123"), 8)] == \
        ["0,1", "2,3"]
    assert {p["cuda_visible_devices"] for p in device_plan(2, 0, ["0"], 8)} == {""}  # hidden
    with pytest.raises(tn.ConfigError, match=r"workers=3 but 2 GPU\(s\) at gpus_per_trial=1"):
        device_plan(3, None, ["0", "1"], cores=8)
    with pytest.raises(tn.ConfigError, match="no CUDA GPU is visible"):
        device_plan(1, 1, [], cores=8)
    with pytest.raises(tn.ConfigError, match="whole number"):
        device_plan(1, 1.5, ["0", "1"], cores=8)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"workers": 0}, "workers must be an integer >= 1, got 0"),
    ({"workers": 2, "executor": "rey"}, "unknown executor 'rey'; did you mean 'ray'"),
    ({"executor": {"name": "process", "gpus_per_trial": -1}}, "gpus_per_trial must be"),
    ({"executor": {"name": "process", "workerz": 2}}, "executor 'process'.*workerz"),
    ({"executor": {"name": "process", "recycle_mb": 0}}, "recycle_mb must be a number of MB > 0"),
    ({"executor": {"name": "ray", "recycle_mb": "1G"}}, "recycle_mb must be a number of MB > 0"),
    ({"executor": 3}, "executor must be a name"),
    ({"trial_timeout": -1}, "trial_timeout must be a number of seconds > 0"),
    ({"retries": -1}, "retries must be an integer >= 0"),
    ({"retries": 1.5}, "retries must be an integer >= 0"),
    ({"max_failures": 0}, "max_failures must be an integer >= 1"),
    ({"timeout": math.nan}, "timeout must be a number of seconds > 0"),
])
def test_bad_settings_fail_before_the_first_trial(kwargs: dict[str, Any], message: str) -> None:
    s = study()
    with pytest.raises(tn.ConfigError, match=message):
        s.optimize(plain, trials=2, **kwargs)
    assert s.trials == []


def test_bad_search_settings_fail_before_storage_is_touched(tmp_path: Path) -> None:
    db = tmp_path / "never.db"
    for kwargs in ({"workers": 0}, {"executor": "rey"}, {"trial_timeout": 0},
                   {"retries": -2}, {"executor": {"name": "ray", "cpus_per_trial": -1}},
                   {"trials": -1}):
        search = tn.ModelSearch(space="mlp", data="digits", storage=str(db), progress=False,
                                **kwargs)
        with pytest.raises(tn.ConfigError):
            search.run()
        assert not db.exists()


@pytest.mark.parametrize(("line", "message"), [
    ("workers: 0", "workers must be an integer >= 1, got 0"),
    ("executor: rey", "unknown executor 'rey'; did you mean 'ray'"),
    ("executor: {name: process, gpus_per_trail: 1}", "executor 'process'.*gpus_per_trail"),
    ("trial_timeout: soon", "key 'trial_timeout' must be float or null, got 'soon'"),
    ("retries: -1", "retries must be an integer >= 0"),
    ("trials: -1", "trials must be an integer >= 0 or None, got -1"),
])
def test_bad_execution_keys_in_a_config_exit_2_naming_them(line: str, message: str,
                                                           tmp_path: Path) -> None:
    import io

    from torchnas.cli import main

    config = tmp_path / "c.yaml"
    config.write_text(f"space: mlp\ndata: digits\nstorage: {tmp_path / 'never.db'}\n{line}\n")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["search", str(config)])
    assert code == 2 and re.search(message, err.getvalue()), err.getvalue()
    assert not (tmp_path / "never.db").exists()


def test_a_search_is_picklable_without_its_study() -> None:
    import pickle

    search = tn.ModelSearch(space=tiny_space, data=tiny_data(), trials=1, progress=False,
                            trainer=tn.Trainer(epochs=1))
    search.run()
    copy = pickle.loads(pickle.dumps(search))
    assert copy.study is None and search.study is not None
    assert copy.dataset is not None and "space_fn" not in copy.__dict__
    width = search.best_trial.arch["width"]
    model = tn.build(copy.space_fn, search.best_trial.arch)  # the space came back by name
    assert [m.out_features for m in model if isinstance(m, nn.Linear)] == [width, 4]
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 4)


def test_a_model_search_in_two_workers_matches_inline() -> None:
    data = tiny_data(128, seed=1)

    def run(**kw: Any) -> list[tn.FrozenTrial]:
        search = tn.ModelSearch(space="mlp", data=data, trainer=tn.Trainer(epochs=2),
                                trials=4, strategy="random", progress=False, **kw)
        return search.run().trials

    parallel, inline = run(workers=2), run()
    assert [t.arch for t in parallel] == [t.arch for t in inline]
    for a, b in zip(parallel, inline, strict=True):
        assert a.metrics["val_accuracy"] == b.metrics["val_accuracy"]
        assert a.intermediate == b.intermediate


# -- the worker protocol, property-tested in one process ----------------------------------------
DOMAINS = st.one_of(
    st.builds(lambda lo, span: ("int", lo, lo + span), st.integers(-50, 50), st.integers(0, 99)),
    st.builds(lambda lo, span, log: ("float", lo, lo + span, log),
              st.floats(1e-3, 10), st.floats(0, 100), st.booleans()),
    st.lists(st.one_of(st.integers(-9, 9), st.text(max_size=3)), min_size=1,
             max_size=4, unique_by=repr).map(lambda v: ("choice", v)),
    st.integers(1, 5).map(lambda n: ("inputs", n)),
)


def make_space(decisions: list[tuple[str, Any]]) -> Any:
    def space(hp: tn.HP) -> dict[str, Any]:
        for i, (kind, *args) in enumerate(decisions):
            label = f"d{i}"
            if kind == "int":
                hp.int(label, args[0], args[1])
            elif kind == "float":
                hp.float(label, args[0], args[1], log=args[2])
            elif kind == "choice":
                hp.choice(label, args[0])
            else:
                hp.inputs(label, args[0])
            if i % 2:
                with hp.scope("s"):
                    hp.bool(label)
        return hp.arch
    return space


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(decisions=st.lists(DOMAINS, min_size=1, max_size=6), seed=st.integers(0, 2**32))
def test_a_remote_recorder_records_what_an_inline_one_does(decisions: list[Any],
                                                           seed: int) -> None:
    space = make_space(decisions)
    reference = tn.Study(objectives="acc", strategy="random", seed=seed)
    trial = reference.ask()
    expected = space(trial.hp)

    driver = tn.Study(objectives="acc", strategy="random", seed=seed)
    here, there = Pipe()
    seen: dict[str, Any] = {}
    recorders: list[type] = []

    def objective(hp: tn.HP) -> float:
        recorders.append(type(hp.trial))
        seen.update(space(hp))
        return 1.0

    def worker() -> None:
        serve(there, objective)

    thread = threading.Thread(target=worker)
    thread.start()
    assert recv(here)["op"] == "ready"
    session = Session(driver, driver.ask(), None)
    send(here, session.start())
    while (message := recv(here))["op"] != "done":
        reply = session.answer(message)
        if reply is not None:
            send(here, reply)
    send(here, {"op": "stop"})
    thread.join()
    assert seen == expected == session.trial.hp.arch
    assert recorders == [RemoteTrial]  # the worker's decisions went through the pipe


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_any_text_as_a_config_is_a_mapping_or_a_named_config_error(text: str) -> None:
    from torchnas._util.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            loaded = load_config(path)
        except tn.ConfigError as exc:
            assert str(path) in str(exc)
        else:
            assert isinstance(loaded, dict)


# -- security -----------------------------------------------------------------------------------
SOURCES = sorted((ROOT / "torchnas").rglob("*.py"))


def calls(text: str, name: str) -> list[str]:
    """The argument text of every call ``name(...)`` in ``text`` (nested brackets included)."""
    found = []
    for m in re.finditer(re.escape(name) + r"\(", text):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        found.append(text[m.end():i - 1])
    return found


def test_nothing_unpickles_files_and_yaml_is_safe() -> None:
    loads, yaml_calls = [], []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(ROOT).as_posix()
        for args in calls(text, "torch.load"):
            loads.append(rel)
            assert "weights_only=True" in args, f"{rel}: torch.load({args})"
        unpickle = r"\bpickle\.load\(|\bdill\.|\bcloudpickle\.load|joblib\.load"
        assert not re.search(unpickle, text), rel
        assert "pickle.loads(" not in text or rel == "torchnas/execution/_worker.py", rel
        assert not re.search(r"allow_pickle\s*=\s*True", text), rel
        assert not re.search(r"yaml\.(unsafe_load|full_load)|Loader=yaml\.(Loader|FullLoader|"
                             r"UnsafeLoader)", text), rel
        for args in calls(text, "yaml.load"):
            yaml_calls.append(rel)
            assert "Loader=_Loader" in args, f"{rel}: yaml.load({args})"
    assert loads and yaml_calls  # the patterns do find the real calls
    from torchnas._util.config import _Loader

    assert issubclass(_Loader, __import__("yaml").SafeLoader)


def test_nothing_listens_beyond_loopback_by_default() -> None:
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(ROOT).as_posix()
        for name in ("create_server", ".bind", "Listener", "run_simple", "uvicorn.run",
                     "HTTPServer", "serve_forever", "make_server"):
            for args in calls(text, name):
                assert "0.0.0.0" not in args and "''" not in args, f"{rel}: {name}({args})"
        for m in re.finditer(r"(host|listen)\s*:\s*[^=\n]*=\s*([^,)\n]*)", text):
            default = m.group(2)
            assert "0.0.0.0" not in default and "::" not in default, f"{rel}: {m.group(0)}"
    assert tn.execution.RayExecutor().listen[0] == "127.0.0.1"


def test_the_ray_listener_accepts_only_its_own_workers() -> None:
    import socket
    from multiprocessing import AuthenticationError
    from multiprocessing.connection import Client, wait

    from torchnas.execution._gate import Gate
    from torchnas.execution._ray import _RayBackend, _RayHandle

    backend = _RayBackend(ray=None, objective=plain, workers=1, cpus=1.0, gpus=0.0,
                          listen=("127.0.0.1", 0))
    backend.sock = socket.create_server(("127.0.0.1", 0))
    backend.key = os.urandom(32)
    backend.gate = Gate(backend.sock, backend.key)
    backend.gate.start()
    handle = backend.handles[0] = _RayHandle(None, None, "token")
    address = backend.sock.getsockname()
    assert address[0] == "127.0.0.1"

    def connect(key: bytes, hello: dict[str, Any]) -> None:
        with contextlib.suppress(AuthenticationError, OSError, EOFError):
            conn = Client(address, authkey=key)
            send(conn, hello)
            time.sleep(0.2)  # the driver reads it, and answers or hangs up
            conn.close()

    try:
        for key, hello, accepted in [
            (os.urandom(32), {"op": "hello", "slot": 0, "token": "token"}, False),  # no key
            (backend.key, {"op": "hello", "slot": 0, "token": "stolen"}, False),
            (backend.key, {"op": "hello", "slot": 5, "token": "token"}, False),
            (backend.key, {"op": "hello", "slot": 0, "token": "token"}, True),
        ]:
            peer = threading.Thread(target=connect, args=(key, hello))
            peer.start()
            if wait(backend.waitables(), timeout=1.0):  # authenticated by the gate's thread
                backend.accept(backend.gate.ready)
            peer.join()
            assert (handle.conn is not None) is accepted
    finally:
        if handle.conn is not None:
            handle.conn.close()
        backend.close()
