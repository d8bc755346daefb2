"""The harness folder on a device: content-addressed files, atomic pushes, no stray paths.

Every file we leave on a device lives directly in one folder (default
``/data/local/tmp/tflite-harness``) under a name we chose: ``<sha>.tflite``, ``<sha>.npz``,
``runner-<sha>.py``, ``benchmark_model-<sha>``, and per-job files ``job-<id>-...``. A file
already there with the right size is not pushed again; a push goes to ``.tmp-<name>`` and
is renamed into place, so a dropped cable never leaves a truncated model under its final
name. Names are checked against a strict pattern and every path is shell-quoted, so user
file names never reach the device shell.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import shlex
import tempfile
from collections.abc import Callable
from pathlib import Path

from harness.devices.adb.errors import Progress, RemoteFailure

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class RemoteFolder:
    def __init__(self, transport, root: str, log: Callable[[str], None] | None = None,
                 progress: Callable[[str, int, int], None] | None = None):
        self.t = transport
        self.progress = progress  # (name, bytes done, bytes total) for pushes without their own
        self.root = root.rstrip("/")
        self.log = log or (lambda _msg: None)
        self.pushed_bytes = 0  # bytes actually sent (cache hits send nothing)
        self.cache_hits = 0
        self.pushed_names: list[str] = []  # every file pushed, in order (job files included)
        self._ready = False

    def path(self, name: str) -> str:
        """The device path of ``name`` in the folder; anything but a plain name is refused."""
        if not _NAME.match(name) or ".." in name:
            raise ValueError(f"refusing remote name {name!r}: not a plain file name in {self.root}")
        return f"{self.root}/{name}"

    def q(self, name: str) -> str:
        return shlex.quote(self.path(name))

    def prepare(self) -> None:
        """Create the folder and clear leftovers of interrupted pushes."""
        if self._ready:
            return
        root = shlex.quote(self.root)
        r = self.t.shell(f"mkdir -p {root} && rm -f {root}/.tmp-* {root}/job-* && echo ok")
        if r.returncode != 0 or "ok" not in r.output:
            raise RemoteFailure(f"cannot create {self.root}: {' '.join(r.output.split())[:200]}")
        self._ready = True

    def size(self, name: str) -> int | None:
        r = self.t.shell(f"stat -c %s {self.q(name)} 2>/dev/null || echo missing")
        text = r.output.strip().splitlines()
        last = text[-1].strip() if text else ""
        return int(last) if last.isdigit() else None

    def ensure(self, local: Path, name: str, *, mode: int = 0o644,
               progress: Progress | None = None, timeout_s: float = 300.0) -> str:
        """Push ``local`` as ``name`` unless a file of the same size is already there."""
        self.prepare()
        want = local.stat().st_size
        if self.size(name) == want:
            self.cache_hits += 1
            return self.path(name)
        self.push(local, name, mode=mode, progress=progress, timeout_s=timeout_s)
        return self.path(name)

    def push(self, local: Path, name: str, *, mode: int = 0o644,
             progress: Progress | None = None, timeout_s: float = 300.0) -> str:
        """Atomic push: ``.tmp-<name>-<rand>`` then ``mv``; the temp file is removed on failure."""
        self.prepare()
        final = self.path(name)
        tmp = f"{self.root}/.tmp-{name}-{secrets.token_hex(4)}"  # name validated by path()
        if progress is None and self.progress is not None:
            report = self.progress
            progress = lambda done, total: report(name, done, total)  # noqa: E731
        try:
            self.t.push(local, tmp, mode=mode, progress=progress, timeout_s=timeout_s)
        except RemoteFailure:
            self._remove_quietly(tmp)
            raise
        self.pushed_bytes += local.stat().st_size
        self.pushed_names.append(name)
        r = self.t.shell(f"mv -f {shlex.quote(tmp)} {shlex.quote(final)} && chmod {mode:o} "
                         f"{shlex.quote(final)}")
        if r.returncode != 0:
            self._remove_quietly(tmp)
            raise RemoteFailure(f"cannot move {name} into place: {' '.join(r.output.split())[:200]}")
        self.log(f"pushed {name} ({local.stat().st_size} bytes)")
        return final

    def push_bytes(self, data: bytes, name: str, **kw) -> str:
        with tempfile.TemporaryDirectory(prefix="tflite-harness-push-") as tmp:
            p = Path(tmp) / "data"
            p.write_bytes(data)
            return self.push(p, name, **kw)

    def pull(self, name: str, local: Path, timeout_s: float = 300.0) -> None:
        self.t.pull(self.path(name), local, timeout_s=timeout_s)

    def remove(self, *names: str) -> None:
        if names:
            self._remove_quietly(*(self.path(n) for n in names))

    def _remove_quietly(self, *paths: str) -> None:
        try:
            self.t.shell("rm -f " + " ".join(shlex.quote(p) for p in paths))
        except Exception:  # noqa: BLE001 - cleanup is best effort; the next prepare() retries
            pass
