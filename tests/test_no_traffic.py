"""Nothing leaves the machine unasked: the CLI run with its defaults (also `run --executor
ray` with its private Ray instance), and the suite's own device tests, connect to nothing
outside loopback; the example profiles stay examples.

Each command runs from the project folder (so `devices/` is the real one, examples and
all) under `strace -f` (tests/support/netwatch.py); every Internet address any of its
processes tried to reach must be loopback. The detector itself is proven first: a tiny
program that tries 192.0.2.1 (RFC 5737 TEST-NET-1) must be flagged.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from harness.core.errors import UsageError
from harness.devices.profiles import load_profile, load_profiles, parse_device_name, resolve
from tests.conftest import MODELS, ROOT, harness_adb_key
from tests.support import netwatch
from tests.support.adb_device import SimulatedAdbDevice

pytestmark = pytest.mark.cost(95)  # seconds on one quiet core, for the xdist order (docs/testing.md)
EXAMPLES = ROOT / "devices" / "examples"
CLI = [sys.executable, "-m", "harness.cli"]

# Reaches for TEST-NET-1 four ways (TCP connect, UDP connect, sendto, sendmsg) and for
# IPv6 documentation space, plus loopback and AF_UNIX, which must not be flagged.
# Non-blocking and closed at once: nothing waits for an answer. Only the TCP connect sends
# a packet (one SYN): a UDP connect sends nothing, and the datagrams are too big for UDP, so
# the kernel refuses them (EMSGSIZE) after strace has seen the address.
TRY_OUTSIDE = r"""
import socket
TOO_BIG = b"x" * 70000
def attempt(family, kind, how, addr):
    s = socket.socket(family, kind)
    s.setblocking(False)
    args = {"sendto": [TOO_BIG, addr], "sendmsg": [[TOO_BIG], [], 0, addr]}.get(how, [addr])
    try:
        getattr(s, how)(*args)
    except OSError:
        pass
    s.close()
attempt(socket.AF_INET, socket.SOCK_STREAM, "connect", ("192.0.2.1", 9))
attempt(socket.AF_INET, socket.SOCK_DGRAM, "connect", ("192.0.2.1", 9))
attempt(socket.AF_INET, socket.SOCK_DGRAM, "sendto", ("192.0.2.1", 9))
attempt(socket.AF_INET, socket.SOCK_DGRAM, "sendmsg", ("192.0.2.1", 9))
attempt(socket.AF_INET6, socket.SOCK_DGRAM, "connect", ("2001:db8::1", 9))
attempt(socket.AF_INET, socket.SOCK_STREAM, "connect", ("127.0.0.1", 9))
attempt(socket.AF_INET6, socket.SOCK_STREAM, "connect", ("::1", 9))
attempt(socket.AF_UNIX, socket.SOCK_STREAM, "connect", "/nonexistent/tflite-harness.sock")
"""


@pytest.fixture(scope="module")
def strace() -> str:
    path = netwatch.strace_path()
    if path is None:
        pytest.skip("strace is not installed: `make test` installs it (scripts/system-deps.sh), "
                    "or apt-get install strace")
    return path


@pytest.fixture(scope="module")
def run_cache(tmp_path_factory) -> Path:
    """One conversion cache for this module's campaign runs: the plain run converts (so its
    converter worker and TensorFlow are traced), and the Ray run that follows finds the
    artifact and reference there: what it checks is Ray's own processes, and a second
    TensorFlow import under strace costs it ~10 s. Run alone, the Ray test converts itself."""
    return tmp_path_factory.mktemp("run-cache")


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """Keys in a temp folder; everything else as the user has it (the adb server, if one
    runs, is asked on its default loopback port)."""
    android = tmp_path / "android"
    android.mkdir()
    return {"ANDROID_USER_HOME": str(android), "COLUMNS": "200"}


def _traced(args: list[str], tmp_path: Path, env: dict[str, str], name: str,
            timeout: float = 300) -> netwatch.Traced:
    t = netwatch.run_traced(args, tmp_path / f"{name}.strace", cwd=ROOT, env=env, timeout=timeout)
    if t.outside:
        pytest.fail(f"{name} reached outside this machine:\n{t.report()}", pytrace=False)
    return t


# -------------------------------------------------------------------------------- the detector


def test_detector_flags_a_connect_outside(strace: str, tmp_path: Path) -> None:
    t = netwatch.run_traced([sys.executable, "-c", TRY_OUTSIDE], tmp_path / "try.strace")
    assert t.proc.returncode == 0, t.proc.stderr
    flagged = {(c.call, c.address, c.port) for c in t.outside}
    assert {("connect", "192.0.2.1", 9), ("sendto", "192.0.2.1", 9), ("sendmsg", "192.0.2.1", 9),
            ("connect", "2001:db8::1", 9)} <= flagged, t.report()
    assert not {c.address for c in t.outside} & {"127.0.0.1", "::1"}
    assert {"127.0.0.1", "::1"} <= {c.address for c in t.contacts if c.on_this_machine}


def test_an_address_the_user_names_is_probed(strace: str, tmp_path: Path, home) -> None:
    """`--device adb:HOST:PORT` is contacted as given, and the detector sees it in the CLI too
    (192.0.2.1 is TEST-NET-1: refused or unanswered; --timeout bounds the wait)."""
    t = netwatch.run_traced(CLI + ["devices", "--json", "--device", "adb:192.0.2.1:5555", "--timeout", "1"],
                            tmp_path / "named.strace", cwd=ROOT, env=home, timeout=120)
    assert t.proc.returncode == 0, t.proc.stderr[-500:]
    assert ("192.0.2.1", 5555) in {(c.address, c.port) for c in t.outside}, t.report()
    found = {d["device"]: d for d in json.loads(t.proc.stdout)["devices"]}
    assert found["adb:192.0.2.1:5555"]["state"] == "unreachable"


def test_parser_reads_every_strace_form() -> None:
    trace = "\n".join([
        '41 connect(3, {sa_family=AF_INET, sin_port=htons(5555), sin_addr=inet_addr("192.0.2.50")}, 16)'
        ' = -1 EINPROGRESS (Operation now in progress)',
        '42 connect(5, {sa_family=AF_INET6, sin6_port=htons(53), sin6_flowinfo=htonl(0), '
        'inet_pton(AF_INET6, "::ffff:198.51.100.7", &sin6_addr), sin6_scope_id=0}, 28 <unfinished ...>',
        '42 <... connect resumed>) = 0',
        '43 connect(4, {sa_family=AF_INET, sin_port=htons(5037), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
        '43 connect(4, {sa_family=AF_INET6, sin6_port=htons(80), sin6_flowinfo=htonl(0), '
        'inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6_addr), sin6_scope_id=0}, 28) = 0',
        '44 connect(6, {sa_family=AF_UNIX, sun_path="/tmp/x.sock"}, 110) = 0',
        '45 sendto(7, "x", 1, 0, {sa_family=AF_INET, sin_port=htons(1234), garbled}, 16) = 1',
    ])
    got = netwatch.parse(trace)
    assert [(c.pid, c.address, c.port) for c in netwatch.outside(got)] == [
        (41, "192.0.2.50", 5555), (42, "::ffff:198.51.100.7", 53), (45, "?", 0)]
    assert [c.address for c in got if c.on_this_machine] == ["127.0.0.1", "::ffff:127.0.0.1"]


# ------------------------------------------------------------------- the commands, by default


def test_device_commands_reach_nothing_outside(strace: str, tmp_path: Path, home) -> None:
    for name, args in {"devices": ["devices"], "devices-json": ["devices", "--json"],
                       "lab-resources": ["lab", "resources"],
                       "lab-resources-json": ["lab", "resources", "--json"]}.items():
        t = _traced(CLI + args, tmp_path, home, name)
        assert t.proc.returncode == 0, f"{name}: {t.proc.stderr[-500:]}"
        for example in ("example-phone", "example-edge-board"):
            assert example not in t.proc.stdout, f"{name} lists {example}:\n{t.proc.stdout}"
    listed = json.loads(t.proc.stdout)  # lab resources --json: the user wrote no profiles here
    assert not any("example" in k for k in listed), listed


@pytest.mark.slow
def test_run_report_compare_reach_nothing_outside(strace: str, tmp_path: Path, home, run_cache: Path) -> None:
    store, cache, out = str(tmp_path / "h.sqlite"), run_cache, tmp_path / "run"
    t = _traced(CLI + ["run", "--model", str(MODELS / "digits_cnn.keras"), "--flag-sets", "fp32",
                       "--runs", "2", "--warmup-runs", "0", "--min-seconds", "0", "--eval-samples", "2",
                       "--workers", "1", "--store", store, "--cache-dir", str(cache), "--out", str(out)],
                tmp_path, home, "run")
    assert t.proc.returncode == 0, t.proc.stderr[-800:]
    results = str(out / "results.json")
    artifact = next(cache.rglob("*.tflite"))
    for name, args in {"report": ["report", "--store", store],
                       "compare": ["compare", "--store", store, results, results],
                       "history": ["history", "digits_cnn", "fp32", "--store", store],
                       "inspect": ["inspect", str(artifact)]}.items():
        t = _traced(CLI + args, tmp_path, home, name)
        assert t.proc.returncode == 0, f"{name}: {t.proc.stderr[-500:]}"
        assert t.proc.stdout.strip(), f"{name} printed nothing"


@pytest.mark.slow
def test_a_private_ray_run_reaches_nothing_outside(strace: str, tmp_path: Path, home, run_cache: Path) -> None:
    """`run --executor ray` without --ray-address starts a private Ray instance; all of it
    (driver, GCS, raylet, dashboard, agents, workers) stays on loopback: no route lookup
    towards 8.8.8.8, no cloud-metadata probe, no DNS (harness/executors/ray_loopback.py)."""
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'tflite-harness[ray]'")
    out = tmp_path / "run"
    env = {**home, "TFLITE_HARNESS_NODE_CACHE": str(tmp_path / "node")}
    t = _traced(CLI + ["run", "--executor", "ray", "--model", str(MODELS / "digits_cnn.keras"),
                       "--flag-sets", "fp32", "--runs", "2", "--warmup-runs", "0", "--min-seconds", "0",
                       "--eval-samples", "2", "--workers", "1", "--store", str(tmp_path / "h.sqlite"),
                       "--cache-dir", str(run_cache), "--out", str(out)],
                tmp_path, env, "ray-run", timeout=600)
    assert t.proc.returncode == 0, t.proc.stderr[-1500:]
    assert "ray: 1 node(s)" in t.proc.stdout, t.proc.stdout[-800:]
    (row,) = json.loads((out / "results.json").read_text())
    assert row["status"] == "ok", row["reason"]
    ray_ports = {c.port for c in t.contacts if c.on_this_machine and c.address != "::1"}
    assert len(ray_ports) >= 3, "Ray's processes did not talk to each other at all?"  # GCS, raylet, workers


@pytest.mark.slow
def test_device_tests_reach_nothing_outside(strace: str, tmp_path: Path) -> None:
    """The suite's own device tests (simulated adbd, the real Debian adb server, adb-shell,
    sync) talk to loopback only."""
    files = ["tests/test_adb_simulator.py", "tests/test_adb_sync.py"]
    t = _traced([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                 *files], tmp_path, {}, "device-tests", timeout=600)
    assert t.proc.returncode == 0, t.proc.stdout[-1500:]
    assert any(c.on_this_machine for c in t.contacts), "the device tests reached no device at all"


# ------------------------------------------------------------------------ the example profiles


def test_examples_are_examples() -> None:
    examples = {p.name: load_profile(p) for p in sorted(EXAMPLES.glob("*.toml"))}
    assert len(examples) >= 2
    for profile in examples.values():
        addr = parse_device_name(profile.address)
        if addr.kind == "tcp":
            assert addr.host.startswith("192.0.2."), f"{profile.source}: not an RFC 5737 address"
        else:
            assert "EXAMPLE" in (addr.serial or ""), f"{profile.source}: not an obviously fake serial"
    assert not list((ROOT / "devices").glob("example*.toml")), "an example sits where profiles load"
    loaded = load_profiles(ROOT / "devices")
    assert not {p.name for p in examples.values()} & set(loaded)
    for profile in examples.values():
        with pytest.raises(UsageError, match="unknown device"):
            resolve(profile.name, ROOT / "devices")


def test_copied_example_lists_the_device(tmp_path: Path, cli) -> None:
    """The README's steps: copy an example into devices/, edit name and address; `devices` lists it."""
    android = tmp_path / "android"
    android.mkdir()
    pub = harness_adb_key(android)
    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "examples").mkdir()
    for example in EXAMPLES.glob("*.toml"):  # a copy of the examples folder stays unread
        shutil.copy(example, tmp_path / "devices" / "examples" / example.name)
    with SimulatedAdbDevice(authorized_keys=[pub], python=sys.executable) as dev:
        text = (EXAMPLES / "example-edge-board.toml").read_text()
        assert 'address = "adb:192.0.2.50:5555"' in text
        text = text.replace('name = "example-edge-board"', 'name = "my-board"')
        text = text.replace("adb:192.0.2.50:5555", f"adb:127.0.0.1:{dev.port}")
        (tmp_path / "devices" / "my-board.toml").write_text(text)
        env = {"ANDROID_USER_HOME": str(android), "ANDROID_ADB_SERVER_PORT": "9",
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        r = cli("devices", "--json", "--timeout", "5", cwd=tmp_path, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        found = json.loads(r.stdout)["devices"]
        assert [d["device"] for d in found] == ["my-board"], found
        assert found[0]["state"] == "device" and "python" in found[0]["runners"], found[0]
