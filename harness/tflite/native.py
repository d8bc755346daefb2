"""Native LiteRT code on a user's file runs in a child process, never in the CLI's.

LiteRT's C++ parsers trust a file's offsets; a file that passed `verify.py` can still carry
values (a shape, an index inside an option table) that a kernel or the model analyzer was
never hardened against. Running that code in a child turns a segfault into a `NativeCrash`
whose message names the file, the program and the signal: `inspect` and `check` print it as
one line and exit 2, a run's row records it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from harness.core.errors import UsageError

ANALYZER_TIMEOUT_S = 60.0
_ANALYZER = (
    "import sys\n"
    "try:\n"
    "    from ai_edge_litert import _pywrap_analyzer_wrapper as a\n"
    "except ImportError as exc:\n"
    "    sys.stderr.write(f'analyzer unavailable: {exc}'); sys.exit(3)\n"
    "sys.stdout.write(a.ModelAnalyzer(sys.argv[1], True, True))\n"
)


class NativeCrash(UsageError):
    """Native code died (signal) or hung on a file that passed the structural check."""


def signal_name(returncode: int) -> str:
    """'SIGSEGV' for a child killed by signal 11 (returncode -11), else 'exit N'."""
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit {returncode}"


def run_analyzer(path: str | Path, timeout_s: float = ANALYZER_TIMEOUT_S) -> tuple[bool, str]:
    """(ran, text): the LiteRT model analyzer's report on PATH, produced in a child process.

    `ran` is False with the reason when the analyzer is not installed or raised; a crash or
    a hang raises NativeCrash.
    """
    what = f"{path}: LiteRT's model analyzer"
    try:
        done = subprocess.run([sys.executable, "-c", _ANALYZER, str(path)], capture_output=True, text=True,
                              timeout=timeout_s, errors="replace")
    except subprocess.TimeoutExpired:
        raise NativeCrash(f"{what} did not finish in {timeout_s:.0f} s on this file; the file is damaged or "
                          "crafted: re-export the model") from None
    if done.returncode < 0:
        raise NativeCrash(f"{what} died with {signal_name(done.returncode)} on this file although it passed the "
                          "flatbuffer check; the file is damaged or crafted: re-export the model")
    if done.returncode == 3:
        return False, done.stderr.strip()
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return False, f"analyzer failed: {last[:200]}"
    return True, done.stdout


def _child(conn, fn, args) -> None:
    try:
        conn.send((True, fn(*args)))
    except Exception as exc:  # noqa: BLE001 - reported to the parent as the call's failure
        conn.send((False, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"))
    conn.close()


def call_in_child(fn, *args, timeout_s: float = 300.0, what: str = "LiteRT"):
    """FN(*ARGS) in a fresh (spawned) process: its return value, or NativeCrash when the child
    died by a signal or ran past TIMEOUT_S; an exception in FN is re-raised as RuntimeError.
    FN must be a module-level function (it is pickled by name)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, args), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout_s):
            proc.kill()
            proc.join(5)
            if proc.exitcode is not None and proc.exitcode < 0 and proc.exitcode != -signal.SIGKILL:
                raise NativeCrash(f"{what} died with {signal_name(proc.exitcode)}")
            raise NativeCrash(f"{what} did not finish in {timeout_s:.0f} s")
        ok, value = parent.recv()
    except EOFError:  # the child died before answering
        proc.join(5)
        raise NativeCrash(f"{what} died with {signal_name(proc.exitcode or 0)}") from None
    finally:
        parent.close()
        proc.join(5)
    if not ok:
        raise RuntimeError(value)
    return value
