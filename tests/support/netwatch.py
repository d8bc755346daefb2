"""Which network addresses a command tried to reach, from the kernel's side: `strace -f`.

The test suite uses this to prove that commands run with their defaults reach nothing
outside this machine. Every ``connect``, ``sendto``, ``sendmsg`` and ``sendmmsg`` of the
command and all its children (converter workers, measuring processes, an adb server it
starts) is traced; every AF_INET/AF_INET6 address in them is a `Contact`. Loopback
(127.0.0.0/8, ::1, ::ffff:127.x.x.x) is this machine; AF_UNIX and netlink carry no address
we parse and are fine. An attempt counts even when it failed: a refused or unreachable
connect still means the command tried to leave. A line that names an Internet family but
whose address we cannot read is reported too (fail closed), never skipped.

Needs the Debian `strace` package (scripts/system-deps.sh installs it for `make test`)
and permission to ptrace one's own children (the default; yama ptrace_scope <= 1).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CALLS = "connect,sendto,sendmsg,sendmmsg"
_LINE = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(?:<\.\.\.\s+)?(\w+)")
_INET = re.compile(r'sa_family=AF_INET, sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)')
_INET6 = re.compile(r'sa_family=AF_INET6, sin6_port=htons\((\d+)\),[^}]*?inet_pton\(AF_INET6, "([^"]+)"')
_FAMILY = re.compile(r"sa_family=AF_INET6?\b")


@dataclass(frozen=True)
class Contact:
    """One address a traced process tried to reach."""

    pid: int
    call: str
    address: str  # "?" when the line named an Internet family we could not parse
    port: int
    line: str

    @property
    def on_this_machine(self) -> bool:
        return is_loopback(self.address)

    def __str__(self) -> str:
        return f"pid {self.pid} {self.call}() -> {self.address}:{self.port}  [{self.line[:160]}]"


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 and IPv4-mapped loopback; anything unreadable is not."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def parse(text: str) -> list[Contact]:
    """Every Internet address in strace output (`strace -f -o FILE` lines, pid first)."""
    found: list[Contact] = []
    for line in text.splitlines():
        if "sa_family=AF_INET" not in line:
            continue
        head = _LINE.match(line)
        pid = int(head.group(1)) if head else -1
        call = head.group(2) if head else "?"
        hits = [(m.start(), int(m.group(1)), m.group(2)) for rx in (_INET, _INET6)
                for m in rx.finditer(line)]
        if len(hits) < len(_FAMILY.findall(line)):
            hits.append((-1, 0, "?"))  # an Internet family we could not read: fail closed
        found += [Contact(pid, call, addr, port, line.strip()) for _pos, port, addr in sorted(hits)]
    return found


def outside(contacts: Sequence[Contact]) -> list[Contact]:
    return [c for c in contacts if not c.on_this_machine]


def strace_path() -> str | None:
    return shutil.which("strace")


@dataclass
class Traced:
    """A finished traced command: its process result and every contact it made."""

    proc: subprocess.CompletedProcess
    contacts: list[Contact]

    @property
    def outside(self) -> list[Contact]:
        return outside(self.contacts)

    def report(self) -> str:
        return "\n".join(str(c) for c in self.outside) or "(none)"


def run_traced(cmd: Sequence[str], trace_file: Path, *, cwd: Path | None = None,
               env: dict[str, str] | None = None, timeout: float = 300) -> Traced:
    """Run CMD under `strace -f`, return its result and the addresses it tried to reach."""
    exe = strace_path()
    if exe is None:
        raise FileNotFoundError("strace is not installed (apt-get install strace; make test does)")
    full = [exe, "-f", "-qq", "-e", "signal=none", "-e", f"trace={CALLS}", "-o", str(trace_file), *cmd]
    proc = subprocess.run(full, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=timeout, check=False)
    text = trace_file.read_text(errors="replace") if trace_file.exists() else ""
    if not text and proc.returncode != 0 and "ptrace" in proc.stderr:
        raise PermissionError(f"strace cannot trace here: {proc.stderr.strip()[:300]}")
    return Traced(proc, parse(text))
