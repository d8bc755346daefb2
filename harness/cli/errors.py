"""The one place where expected errors become usage errors (exit 2, one line).

Commands raise `UsageError` for what they check themselves; everything else that a user's
input can provoke reaches `main` as some library's exception: a path that is a file where a
folder is wanted (FileExistsError, NotADirectoryError), a folder where a file is wanted, a
file that is not a .tflite (TFLiteFormatError), sample data that does not fit (SampleError).
`as_usage_error` turns each of those into one line naming the thing and the fix. Anything it
does not know stays an internal error (exit 1, "run with --debug"), so a real bug is never
dressed up as the user's fault.
"""

from __future__ import annotations

import errno

from harness.core.errors import UsageError

_FIXES = {
    errno.EEXIST: "it exists and is not a folder; choose another path",
    errno.ENOTDIR: "a part of it is a file, not a folder; choose another path",
    errno.EISDIR: "it is a folder; give a file",
    errno.ENOENT: "it does not exist; check the path",
    errno.EACCES: "permission denied; choose a path you can write",
    errno.EPERM: "permission denied; choose a path you can write",
    errno.EROFS: "the file system is read-only; choose another path",
    errno.ENOSPC: "no space left on the device; free some or choose another path",
}


def as_usage_error(exc: BaseException) -> UsageError | None:
    """EXC as the user's error to fix, or None when it is not one (an internal error)."""
    if isinstance(exc, UsageError):
        return exc
    if isinstance(exc, OSError) and exc.errno in _FIXES and (exc.filename or exc.filename2):
        return UsageError(f"{exc.filename or exc.filename2}: {_FIXES[exc.errno]}")
    from harness.core.samples import SampleError
    from harness.tflite.file import TFLiteFormatError

    if isinstance(exc, TFLiteFormatError):
        return UsageError(str(exc))
    if isinstance(exc, SampleError):
        return UsageError(str(exc))
    return None
