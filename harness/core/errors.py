"""Errors that the CLI turns into one clear line.

A `UsageError` is the user's to fix (bad flag, bad file, bad TOML): exit code 2, no
traceback unless `--debug`. Anything that goes wrong inside one job is not an exception
at this level at all: it becomes a result row with a status and a reason.
"""

from __future__ import annotations

import zipfile
import zlib


class HarnessError(Exception):
    """Base class of errors the CLI prints as one line."""

    exit_code = 1


class UsageError(HarnessError):
    """Bad input from the user: names the thing and the fix; exit code 2."""

    exit_code = 2


# What zipfile and its decompressors raise on a damaged or hostile archive (an .npz, a
# model's associated files): the callers treat all of them as "not a readable zip".
DAMAGED_ZIP_ERRORS = (OSError, zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, ValueError,
                      zlib.error)
