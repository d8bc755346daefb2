"""ADB push throughput: the harness's push path vs Debian `adb push`, same simulated device.

The simulated device (`tests/support/adb_device.py`, real ADB wire protocol on loopback)
runs in its own process. After one untimed warm-up push of each kind, pushes of one 50 MB
file alternate H, D, S, H, D, S, ...:

  H  the harness: `RemoteFolder.push` (atomic: temp name, then mv) over the direct
     transport of `AdbDevice` (adb-shell's connection, our sync SEND in
     harness/devices/adb/sync.py), as a campaign pushes artifacts;
  D  Debian `adb push` through a private adb server (own port, HOME and key) that has the
     device connected (`adb connect`);
  S  informative: the same `RemoteFolder.push` over the harness's adb-server transport
     (`ServerTransport`), through that same server.

Target: H's throughput 0.8x D's or better (medians over rounds). Then the same
file again through `RemoteFolder.ensure` (what a campaign calls): an unchanged file must
cost no transfer (bytes sent and time of that second push).

Note: the device, both clients and the adb server share this machine's cores.

    .venv/bin/python bench/adb_push.py [--mb 50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

TARGET = 0.8
REMOTE = "/data/local/tmp/tflite-harness"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_adb() -> str | None:
    sdk = "/usr/lib/android-sdk/platform-tools/adb"
    return shutil.which("adb") or (sdk if os.access(sdk, os.X_OK) else None)


def start_device(root: Path, keys: list[Path]) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "tests.support.adb_device", "--root", str(root), "--quiet", "--multi-client"]
    for k in keys:
        cmd += ["--authorized-key", str(k)]
    proc = subprocess.Popen(cmd, cwd=c.ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = int(proc.stdout.readline().strip())
    return proc, port


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)  # one push takes ~0.15-0.5 s
    args = ap.parse_args()
    c.header(f"adb_push: {args.mb} MB push, harness vs Debian adb")
    rep = c.Report("adb_push")
    adb = find_adb()
    from harness.devices.adb.device import AdbDevice
    from harness.devices.adb.files import RemoteFolder
    from harness.devices.adb.transport import DirectTransport, ServerTransport, load_signers
    from harness.devices.profiles import resolve

    with tempfile.TemporaryDirectory(prefix="bench-adb-") as tmp_s:
        tmp = Path(tmp_s)
        payload = tmp / "payload.bin"
        with payload.open("wb") as f:
            f.write(os.urandom(args.mb * 1_000_000))
        size = payload.stat().st_size
        _signers, hkey = load_signers(tmp / "harness-key" / "adbkey")
        keys = [Path(str(hkey) + ".pub")]
        env = None
        if adb:
            home = tmp / "adbhome"
            (home / ".android").mkdir(parents=True)
            env = dict(os.environ, HOME=str(home), ANDROID_SDK_HOME=str(home),
                       ANDROID_USER_HOME=str(home / ".android"), ANDROID_ADB_SERVER_PORT=str(free_port()))
            env.pop("ADB_VENDOR_KEYS", None)
            subprocess.run([adb, "keygen", str(home / ".android" / "adbkey")], env=env, capture_output=True,
                           timeout=30)
            keys.append(home / ".android" / "adbkey.pub")
        device, port = start_device(tmp / "device", keys)
        serial = f"127.0.0.1:{port}"
        try:
            profile = resolve(f"adb:{serial}")
            dev = AdbDevice(profile, transport=DirectTransport(serial, host="127.0.0.1", port=port,
                                                               key_path=hkey))
            dev.folder.prepare()

            def adb_cmd(*a: str, timeout: float = 300) -> subprocess.CompletedProcess:
                return subprocess.run([adb, *a], env=env, capture_output=True, text=True, timeout=timeout,
                                      stdin=subprocess.DEVNULL)

            if adb:
                adb_cmd("start-server", timeout=30)
                out = adb_cmd("connect", serial, timeout=30)
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and f"{serial}\tdevice" not in adb_cmd("devices").stdout:
                    time.sleep(0.1)
                if f"{serial}\tdevice" not in adb_cmd("devices").stdout:
                    print(f"  Debian adb could not connect: {out.stdout} {out.stderr}")
                    adb = None
            server = None
            if adb:
                server = RemoteFolder(ServerTransport(serial, serial, port=int(env["ANDROID_ADB_SERVER_PORT"])),
                                      REMOTE)

            def push_d(name: str) -> None:
                r = adb_cmd("-s", serial, "push", str(payload), f"{REMOTE}/{name}")
                if r.returncode != 0:
                    raise SystemExit(f"adb push failed: {r.stdout} {r.stderr}")

            dev.folder.push(payload, "warm-h.bin")  # untimed: first-use costs on every side
            if adb:
                push_d("warm-d.bin")
                server.push(payload, "warm-s.bin")
            h_times, d_times, s_times = [], [], []
            load0 = c.loadavg()
            for i in range(args.rounds):
                t0 = time.perf_counter()
                dev.folder.push(payload, f"h{i}.bin")
                h_times.append(time.perf_counter() - t0)
                if adb:
                    t0 = time.perf_counter()
                    push_d(f"d{i}.bin")
                    d_times.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    server.push(payload, f"s{i}.bin")
                    s_times.append(time.perf_counter() - t0)
                print(f"    round {i + 1}: harness {h_times[-1]:.2f} s"
                      + (f", Debian adb {d_times[-1]:.2f} s, harness via the adb server "
                         f"{s_times[-1]:.2f} s" if adb else ""), flush=True)
            load = f"{load0} -> {c.loadavg()}"
            want = sha256_of(payload)
            for i in range(args.rounds):
                for kind in ("h", "d", "s") if adb else ("h",):
                    got = tmp / "device" / REMOTE.lstrip("/") / f"{kind}{i}.bin"
                    assert sha256_of(got) == want, f"{got.name} on the device differs from the payload"
            h_mbs = size / 1e6 / c.median(h_times)
            rep.add("harness push throughput", h_mbs, "MB/s", load=load,
                    note=f"median of {args.rounds}: {c.median(h_times):.2f} s for {size / 1e6:.0f} MB")
            if adb:
                d_mbs = size / 1e6 / c.median(d_times)
                rep.add("Debian adb push throughput", d_mbs, "MB/s", load=load,
                        note=f"median of {args.rounds}: {c.median(d_times):.2f} s")
                ratio = h_mbs / d_mbs
                rep.add("harness / Debian adb throughput", ratio, "x", f">= {TARGET}", ratio >= TARGET, load=load)
                s_mbs = size / 1e6 / c.median(s_times)
                rep.add("harness via the adb server (ServerTransport) / Debian adb throughput",
                        s_mbs / d_mbs, "x", load=load,
                        note=f"informative; {s_mbs:.0f} MB/s, median of {args.rounds}")
            else:
                rep.add("harness / Debian adb throughput", None, "x", f">= {TARGET}", None,
                        note="Debian adb not installed (make system-deps)")
            # an unchanged file again, the way a campaign pushes (ensure): nothing is sent
            before = dev.folder.pushed_bytes
            t0 = time.perf_counter()
            dev.folder.ensure(payload, "h0.bin")
            again = time.perf_counter() - t0
            sent = dev.folder.pushed_bytes - before
            rep.add("re-push of an unchanged file: bytes sent", sent, "B", "0", sent == 0)
            rep.add("re-push of an unchanged file: time", again, "s", note="one stat over the shell")
            dev.close()
            if adb:
                adb_cmd("kill-server", timeout=30)
        finally:
            device.terminate()
            device.wait(timeout=10)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
