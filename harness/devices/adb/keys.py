"""Our ADB key pair, found and created the way Debian's `adb` does it.

~/.android/adbkey (or $ANDROID_USER_HOME/adbkey) is created with mode 0600 when missing, so
the device's "Allow USB debugging?" prompt is answered once for the harness and for `adb`
alike; ADB_VENDOR_KEYS adds more keys, as it does for adb.
"""

from __future__ import annotations

import os
from pathlib import Path


def default_key_path() -> Path:
    base = os.environ.get("ANDROID_USER_HOME") or os.path.join(os.path.expanduser("~"), ".android")
    return Path(base) / "adbkey"


def load_signers(key_path: Path | None = None) -> tuple[list, Path]:
    """Signers for ~/.android/adbkey (created, mode 0600, when missing, like adb does) plus
    every key in ADB_VENDOR_KEYS (files, or directories holding ``*.adb_key``/``adbkey``)."""
    from adb_shell.auth.keygen import keygen
    from adb_shell.auth.sign_pythonrsa import PythonRSASigner

    path = key_path or default_key_path()
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        old = os.umask(0o077)
        try:
            keygen(str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
    candidates = [path]
    for entry in filter(None, os.environ.get("ADB_VENDOR_KEYS", "").split(os.pathsep)):
        p = Path(entry).expanduser()
        if p.is_dir():
            candidates += sorted(q for q in p.iterdir()
                                 if q.is_file() and (q.suffix == ".adb_key" or q.name == "adbkey"))
        elif p.is_file():
            candidates.append(p)
    signers = []
    for p in candidates:
        try:
            signers.append(PythonRSASigner.FromRSAKeyPath(str(p)))
        except (OSError, ValueError):
            continue  # an unreadable vendor key is skipped, as adb does
    return signers, path
