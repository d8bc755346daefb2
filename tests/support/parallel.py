"""How the suite shares two cores under pytest-xdist (`make test` runs `-n 2 --dist loadscope`).

Three rules, all driven by markers so that a new test module fits without editing this file
(docs/testing.md says which marker to use when):

- **A module runs on one worker.** `--dist loadscope` keeps a module's tests together, so a
  module-scoped fixture (a campaign run, a conversion) is built once, not once per worker.
- **The heaviest modules start first.** Each worker sorts the collection the same way, heavy
  modules (by `cost(seconds)`, else by their number of `slow` tests) before light ones, and the
  scheduler hands modules out in that order: the light ones fill the gaps at the end instead of
  one long module starting last while the other worker idles.
- **`alone` tests run while nothing else does.** A test that measures time or memory, or whose
  timing decides what it sees (a kill at a moment), would see the other worker's load. Every
  test holds a shared lock while it runs; an `alone` test takes it exclusively, so it waits for
  the other worker's current test and the other worker waits for it. Modules with `alone` tests
  are scheduled before all others, their `alone` tests first, so that the two workers seldom
  wait on each other.

Without xdist (`pytest tests/test_foo.py`) none of this applies: the order and the run are plain.
"""

from __future__ import annotations

import fcntl
import os
import resource
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SLOW_TEST_S = 10.0  # the guess for a `slow` test without a `cost` mark
FAST_TEST_S = 0.2


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cpu-times", type=int, default=None, metavar="N",
                     help="list the N tests that used the most CPU (the test process and the children it "
                          "waited for), with the total: what two cores must get through (0: all)")


# set by xdist in each worker; a test's own child pytest (tests/test_pytest_plugin.py runs a
# user's file) would take them for its own and, e.g., pytest-benchmark would turn itself off
XDIST_ENV = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """(controller) The terminal width the tests see, as in a plain run: a worker otherwise has
    COLUMNS=80, and the CLI's tables fold to it."""
    node.workerinput["tflite_harness_columns"] = os.environ.get("COLUMNS")


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "numprocesses", None) and not getattr(config.option, "testrunuid", None):
        config.option.testrunuid = uuid.uuid4().hex  # the controller names the lock folder, to remove it
    if _under_xdist(config):  # a worker runs its tests in the environment of a plain run
        for name in XDIST_ENV:
            os.environ.pop(name, None)
        columns = config.workerinput.get("tflite_harness_columns")
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    config.addinivalue_line(
        "markers", "cost(seconds): about how long this module takes on one core (setup included); "
        "under xdist the costliest modules are started first")
    config.addinivalue_line(
        "markers", "alone: measures time or memory (or depends on timing): under xdist it runs while no "
        "other test runs")


def _module_of(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def module_weights(items: list[pytest.Item]) -> dict[str, tuple[int, float]]:
    """(0 if the module has an `alone` test else 1, -estimated seconds) per module: a sort key."""
    guessed: dict[str, float] = {}
    marked: dict[str, float] = {}
    alone: set[str] = set()
    for item in items:
        module = _module_of(item)
        guessed[module] = guessed.get(module, 0.0) + (
            SLOW_TEST_S if item.get_closest_marker("slow") else FAST_TEST_S)
        cost = item.get_closest_marker("cost")
        if cost is not None:
            marked[module] = max(marked.get(module, 0.0), float(cost.args[0]))
        if item.get_closest_marker("alone"):
            alone.add(module)
    return {m: (0 if m in alone else 1, -marked.get(m, guessed[m])) for m in guessed}


def _under_xdist(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    if not _under_xdist(config):
        return
    weights = module_weights(items)
    first_seen = {m: i for i, m in reversed(list(enumerate(_module_of(it) for it in items)))}
    # within a module its `alone` tests come first (so that they run while the other worker is
    # also in its first module, not during some long setup of a later one), the others as written
    items.sort(key=lambda it: (*weights[_module_of(it)], first_seen[_module_of(it)],
                               it.get_closest_marker("alone") is None))


def _lock_dir(uid: str) -> Path:
    """The run's lock folder: one per run (the uid is the same for every worker of a run)."""
    return Path(tempfile.gettempdir()) / f"tflite-harness-xdist-{uid}"


def pytest_unconfigure(config: pytest.Config) -> None:
    uid = getattr(config.option, "testrunuid", None)
    if uid and not _under_xdist(config):  # the controller, after its workers are gone
        shutil.rmtree(_lock_dir(uid), ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Every test holds the run's lock shared; an `alone` test holds it exclusively.

    A turnstile in front of the lock gives a waiting `alone` test priority: once it waits, the
    other worker's next test queues behind it instead of slipping in ahead (flock alone would
    let a busy reader starve the writer).
    """
    if not _under_xdist(item.config):
        yield
        return
    folder = _lock_dir(item.config.workerinput["testrunuid"])
    folder.mkdir(exist_ok=True)
    exclusive = item.get_closest_marker("alone") is not None
    with open(folder / "turnstile", "a") as turnstile, open(folder / "running", "a") as running:
        if exclusive:
            fcntl.flock(turnstile, fcntl.LOCK_EX)
            fcntl.flock(running, fcntl.LOCK_EX)
        else:
            fcntl.flock(turnstile, fcntl.LOCK_SH)
            fcntl.flock(running, fcntl.LOCK_SH)
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(running, fcntl.LOCK_UN)
            if exclusive:
                fcntl.flock(turnstile, fcntl.LOCK_UN)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """loadscope, but a worker gets its next module only when its last test is about to run.

    xdist's own loadscope tops a worker up while two tests are still pending, which can queue a
    heavy module behind a long last test while the other worker runs dry.
    """
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False  # the workers' collection is in cost order already

    class CostFirstScheduling(LoadScopeScheduling):
        def _reschedule(self, node) -> None:
            if node.shutting_down:
                return
            if not self.workqueue:
                node.shutdown()
                return
            # a worker runs a test only once it knows the next one (or shuts down), so the
            # next module must arrive while one test is still pending, not later
            if self._pending_of(self.assigned_work[node]) > 1:
                return
            self._assign_work_unit(node)

    return CostFirstScheduling(config, log)


# ------------------------------------------------------------------ --cpu-times


def _cpu_now() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.config.getoption("cpu_times") is not None:
        item.stash[_CPU_AT_START] = _cpu_now()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    if call.when == "teardown" and _CPU_AT_START in item.stash:  # travels to the xdist controller
        item.user_properties.append(("cpu_s", _cpu_now() - item.stash[_CPU_AT_START]))
    yield


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        for name, value in report.user_properties:
            if name == "cpu_s":
                _CPU_TIMES[report.nodeid] = value


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    count = config.getoption("cpu_times")
    if count is None or _under_xdist(config) or not _CPU_TIMES:
        return
    ranked = sorted(_CPU_TIMES.items(), key=lambda kv: -kv[1])
    terminalreporter.write_sep("=", f"CPU seconds per test: {sum(_CPU_TIMES.values()):.1f} s in all")
    for nodeid, seconds in ranked[:count] if count else ranked:
        terminalreporter.write_line(f"{seconds:8.2f}s cpu  {nodeid}")


_CPU_AT_START = pytest.StashKey[float]()
_CPU_TIMES: dict[str, float] = {}
