"""Keep the runtime's native log lines off the user's terminal and notebook.

LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." (and TensorFlow its
C++ logging) from native code straight to file descriptor 2: Python's `sys.stderr`,
`warnings` filters and `logging` never see those lines, and a notebook shows them in every
cell that creates an interpreter. So the places that create or run an interpreter in the
user's process wrap it in `native_stderr_to(log)`, which points fd 2 at the run's log for
that stretch; child processes (conversion workers, measurement runners) already write their
stderr into logs/.

`--debug` (CLI) or `verbose=True` (Python API) turns it off (`verbose_output`): the lines
reach the terminal as before.

fd 2 is one per process: while redirected, anything any thread writes to fd 2 goes to the
log. The stretches are short (interpreter creation and invoke) and print nothing themselves.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

_verbose = False


def is_verbose() -> bool:
    return _verbose


def set_verbose(on: bool) -> None:
    """`--debug`: native log lines reach the terminal for the rest of the process."""
    global _verbose
    _verbose = bool(on)


@contextlib.contextmanager
def verbose_output(on: bool | None) -> Iterator[None]:
    """A Python API call's `verbose=`: True shows native log lines for the call, None keeps the setting."""
    global _verbose
    before = _verbose
    if on is not None:
        _verbose = bool(on)
    try:
        yield
    finally:
        _verbose = before


@contextlib.contextmanager
def native_stderr_to(log: str | Path | None) -> Iterator[None]:
    """Point fd 2 at LOG (appended; its folder is made) for the body, unless verbose.

    Without a LOG the lines are dropped (os.devnull). Python's own writes to `sys.stderr` in
    the body are flushed to the same place, so their order against native lines holds.
    """
    if _verbose:
        yield
        return
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):  # a closed or replaced stream: nothing buffered to keep in order
        pass
    target = _open_log(log)
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 at all (a detached service): nothing can reach a terminal
        os.close(target)
        yield
        return
    try:
        os.dup2(target, 2)
        yield
    finally:
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError):
            pass
        os.dup2(saved, 2)
        os.close(saved)
        os.close(target)


def _open_log(log: str | Path | None) -> int:
    """LOG opened for appending; os.devnull when there is none or it cannot be written (the
    lines are only the runtime's chatter: not worth failing a diagnosis for)."""
    if log is not None:
        try:
            Path(log).parent.mkdir(parents=True, exist_ok=True)
            return os.open(str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError:
            pass
    return os.open(os.devnull, os.O_WRONLY)
