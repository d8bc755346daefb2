"""Issue 8: a campaign on a Ray cluster (a device lab), on this one machine.

A local multi-node cluster (`ray.cluster_utils.Cluster`: head + one node per simulated
phone, one CPU each) stands in for a lab: each `SimulatedAdbDevice` is "attached" to its
node through the node's custom resource. The campaign spreads over both; each device's
jobs run on its node; rows match the local executor's; losing a node mid-campaign keeps
every finished row, turns that device's remaining jobs into `device_lost` (then `--resume`
runs them once the device is back), and a conversion on a lost node is retried elsewhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.executors.resources import device_resource, resources_for

from .conftest import MODELS, ROOT, harness_adb_key

pytestmark = pytest.mark.cost(130)  # seconds on one quiet core, for the xdist order (docs/testing.md)

MB = 1024 * 1024


# --------------------------------------------------------------------------- fast checks
def test_device_resource_names_are_safe_for_ray():
    assert device_resource("adb:127.0.0.1:5555") == "device_adb_127.0.0.1_5555"
    assert device_resource("adb:emulator-5554") == "device_adb_emulator-5554"
    assert device_resource("pixel 7") == "device_pixel_7"
    assert resources_for(["adb:a", "adb:b"]) == {"device_adb_a": 1, "device_adb_b": 1}


def test_lab_resources_prints_the_ray_start_value(cli):
    proc = cli("lab", "resources", "--device", "adb:127.0.0.1:5555", "--no-profiles", "--no-server")
    assert proc.returncode == 0, proc.stderr
    assert "--resources '{\"device_adb_127.0.0.1_5555\": 1}'" in proc.stdout
    assert "ray start --address HEAD:6379 --resources" in proc.stdout
    proc = cli("lab", "resources", "--json", "--devices", "adb:a,adb:b", "--no-profiles", "--no-server")
    assert proc.stdout.strip() == '{"device_adb_a": 1, "device_adb_b": 1}'


def test_ray_executor_without_ray_says_how_to_install(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"
            "from harness.cli.main import main\n"
            f"main(['run', '--executor', 'ray', '--model', {str(MODELS / 'digits_cnn.keras')!r}])")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: the ray executor needs Ray: pip install 'tflite-harness[ray]'"]


def test_a_private_instance_starts_on_loopback_and_the_environment_is_put_back(monkeypatch):
    """What `loopback_only` gives the Ray processes it starts, without starting any: the
    node address is 127.0.0.1 (no route lookup), the cloud probe's `requests` goes to a
    dead loopback proxy, loopback itself goes direct; afterwards all is as before."""
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'tflite-harness[ray]'")
    from ray._private import services
    from requests.utils import get_environ_proxies

    from harness.executors.ray_loopback import DEAD_PROXY, loopback_only

    monkeypatch.setenv("http_proxy", "http://192.0.2.9:3128")  # the user's own proxy comes back after
    monkeypatch.delenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", raising=False)
    before = dict(os.environ)
    with loopback_only():
        assert services.get_node_ip_address() == "127.0.0.1"
        assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
        assert get_environ_proxies("http://169.254.169.254/latest/meta-data/")["http"] == DEAD_PROXY
        assert get_environ_proxies("http://metadata.google.internal/computeMetadata/v1")["http"] == DEAD_PROXY
        assert not get_environ_proxies("http://127.0.0.1:8265/")
    assert dict(os.environ) == before


def test_ray_address_needs_the_ray_executor(cli):
    proc = cli("run", "--ray-address", "auto", "--model", str(MODELS / "digits_cnn.keras"))
    assert proc.returncode == 2 and "--ray-address needs --executor ray" in proc.stderr


def test_a_conversion_lost_with_its_node_is_a_row_resume_reruns_and_is_not_cached(tmp_path):
    """When Ray's retries run out: `conversion_failed`, reason "node lost", no cache entry."""
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'tflite-harness[ray]'")
    from concurrent.futures import Future

    from harness.config import Campaign, Settings, model_from_path
    from harness.convert.cache import Cache
    from harness.convert.pool import WorkerAnswer
    from harness.core.flag_sets import resolve_flag_sets
    from harness.core.result import Result
    from harness.pipeline.artifacts import Prepared
    from harness.pipeline.build import Builder
    from harness.pipeline.campaign import retry_on_resume, tool_versions

    class LostPool:  # what RayPool answers when Ray's retries ran out
        on_host = False

        def submit(self, job, priority=0.0):  # WorkerPool.submit's interface
            f = Future()
            f.set_result(WorkerAnswer(ok=False, lost=True, error="node lost: NodeDiedError: gone"))
            return f

        def close(self, kill=False): ...

    model = model_from_path(str(MODELS / "digits_cnn.keras"), where="t")
    c = Campaign(name="t", models=(model,), flag_sets=tuple(resolve_flag_sets(["fp32"], {})), devices=(),
                 settings=Settings())
    cache = Cache(tmp_path / "cache")
    b = Builder(c, cache, tool_versions(), tmp_path / "out", 1, pool_factory=lambda builder: LostPool())
    prepared = {model.name: Prepared(model, True, dir=tmp_path, meta={"inputs": [{"name": "x", "shape": [1, 8, 8, 1]}]})}
    (art,) = b.convert_all(prepared, lambda a: None)
    assert art.status == "conversion_failed" and art.failure_category == "node_lost"
    assert art.reason.startswith("node lost: NodeDiedError") and "--resume" in art.reason
    assert not list((tmp_path / "cache" / "conversions").iterdir())  # a lost node says nothing about the model
    row = Result(model.name, "fp32", "adb:x", 1, art.status, art.reason, failure_category=art.failure_category)
    assert retry_on_resume(row) and retry_on_resume(Result("m", "f", "d", 1, "device_lost"))
    assert not retry_on_resume(Result("m", "f", "d", 1, "conversion_failed", failure_category="converter_error"))


# --------------------------------------------------------------------------- the lab
@dataclass
class Lab:
    cluster: object
    devices: dict  # "A"/"B" -> SimulatedAdbDevice
    nodes: dict  # "A"/"B"/"head" -> node handle
    tmp: Path
    extra: list = field(default_factory=list)

    def name(self, which: str) -> str:
        return f"adb:{self.devices[which].serial}"

    def add_node(self, **kw):
        from harness.executors.ray_loopback import NO_ACCELERATORS, loopback_only

        kw["resources"] = {**NO_ACCELERATORS, **kw.get("resources", {})}
        with loopback_only():  # a private lab: every process of every node on 127.0.0.1
            node = self.cluster.add_node(object_store_memory=100 * MB, **kw)
        self.cluster.wait_for_nodes()
        return node


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'tflite-harness[ray]'")
    from ray.cluster_utils import Cluster

    from harness.executors.ray_loopback import NO_ACCELERATORS, loopback_only
    from tests.support.adb_device import SimulatedAdbDevice

    tmp = tmp_path_factory.mktemp("lab")
    old = os.environ.get("ANDROID_USER_HOME")
    os.environ["ANDROID_USER_HOME"] = str(tmp / "android")  # inherited by every node's workers
    pub_key = harness_adb_key(tmp / "android")  # the env var above stays set for the nodes
    devices = {w: SimulatedAdbDevice(root=tmp / f"phone-{w}", authorized_keys=[str(pub_key)]).__enter__()
               for w in "AB"}
    with loopback_only():  # as the harness's private instance: nothing leaves this machine
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "object_store_memory": 100 * MB, "resources": dict(NO_ACCELERATORS),
            # notice a dead node within ~2 s instead of ~30 s
            "_system_config": {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                               "health_check_failure_threshold": 3},
        })
    lab = Lab(cluster, devices, {"head": cluster.head_node}, tmp)
    for w in "AB":
        lab.nodes[w] = lab.add_node(num_cpus=1, resources={device_resource(lab.name(w)): 1})
    with loopback_only():
        ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
    try:
        yield lab
    finally:
        ray.shutdown()
        cluster.shutdown()
        for d in devices.values():
            d.stop()
        if old is None:
            os.environ.pop("ANDROID_USER_HOME", None)
        else:
            os.environ["ANDROID_USER_HOME"] = old


class Events:
    def __init__(self, on_row=None, on_converted=None):
        self.rows, self.notes, self.on_row, self.on_converted = [], [], on_row, on_converted

    def planned(self, conversions, measurements): ...
    def measuring(self, label): ...

    def converted(self, art):
        if self.on_converted:
            self.on_converted(art)

    def measured(self, result):
        self.rows.append(result)
        if self.on_row:
            self.on_row(result)

    def note(self, text):
        self.notes.append(text)


# a budget flag set whose first search step (plain int8) already meets it: one diagnosis and one step
BUDGET_FLAG_SET = {"base": "int8", "budget": "cosine>=0.5"}
# a built-in AI Edge Quantizer flag set: its recipe applied to the fp32 artifact, in light workers
QUANTIZER_FLAG_SET = "aeq_dynamic_int8"


def campaign(lab: Lab, flag_sets=("fp32", "int8"), threads=(1,), devices=None):
    from harness.config import Campaign, Settings, model_from_path
    from harness.core.flag_sets import parse_flag_set, resolve_bases, resolve_flag_sets

    model = model_from_path(str(MODELS / "digits_cnn.keras"), where="test")
    user = resolve_bases({"int8_budget": parse_flag_set("int8_budget", BUDGET_FLAG_SET, "test")}, "test")
    return Campaign(name="lab", models=(model,), flag_sets=tuple(resolve_flag_sets(list(flag_sets), user)),
                    devices=tuple(devices if devices is not None else (lab.name("A"), lab.name("B"))),
                    settings=Settings(threads=threads, runs=10, min_seconds=0.05, eval_samples=8, warmup_runs=2))


def options(lab: Lab, tag: str, executor: str = "ray", cache_dir: Path | None = None, workers: int = 2, **kw):
    """CACHE_DIR: the run's own cache by default; a test that does not look at how its
    artifacts were made passes the suite's (`suite_cache`), so it converts nothing another
    test already converted."""
    from harness.pipeline.campaign import RunOptions

    return RunOptions(out_root=lab.tmp / tag, store_path=lab.tmp / tag / "s.sqlite",
                      cache_dir=cache_dir or lab.tmp / tag / "cache", executor=executor,
                      node_cache=str(lab.tmp / "node-{node}"), workers=workers, **kw)


def by_key(results):
    return {(r.flag_set, r.device, r.threads): r for r in results}


@contextmanager
def conversions_on_the_head(lab: Lab):
    """Hold the device nodes' one CPU each (an actor on each) so that every conversion task
    runs on the head, one after another, in one Ray worker and its one converter: the
    conversions spreading over nodes is not what the test checks, and each node's converter
    cost a TensorFlow import (~7 CPU-s). Device jobs take no CPU (`measure_job`), so they
    still run on their own nodes."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=1)
    class Hold:
        def ready(self) -> bool:
            return True

    holds = [Hold.options(scheduling_strategy=NodeAffinitySchedulingStrategy(lab.nodes[w].node_id, soft=False)).remote()
             for w in "AB"]
    ray.get([h.ready.remote() for h in holds], timeout=120)  # placed: their CPUs are taken
    try:
        yield
    finally:
        for h in holds:
            ray.kill(h)


@pytest.mark.slow
def test_campaign_spreads_over_the_lab_and_matches_the_local_executor(lab, suite_cache):
    """fp32 and int8 convert on the cluster; the budget flag set's search runs on the driver
    (its steps read the host's calibration and measure on its runtime), and its choice is
    measured on the lab's devices like any artifact. A quantizer flag set (the AI Edge
    Quantizer on the fp32 artifact) is measured on the lab's devices too."""
    from harness.executors import make_run

    c = campaign(lab, flag_sets=("fp32", "int8", "int8_budget", QUANTIZER_FLAG_SET))
    # the local side is only the reference rows: from the suite's cache, one worker, no search
    local = make_run(campaign(lab, flag_sets=("fp32", "int8", QUANTIZER_FLAG_SET)),
                     options(lab, "local", executor="local", cache_dir=suite_cache, workers=1)).execute()
    events = Events()
    run = make_run(c, options(lab, "ray"), events)
    with conversions_on_the_head(lab):  # measurements need no CPU: A and B still measure their own jobs
        summary = run.execute()
    assert summary.conversions_performed == 4  # its own cache: converted (searched, quantized), not copied
    ray_rows, local_rows = by_key(summary.results), by_key(local.results)
    for (fs, device, threads), r in ray_rows.items():
        if fs == "int8_budget":  # its first step, plain int8 from the driver's calibration, meets it
            assert r.status == "ok" and r.reason.startswith("float layers: none; meets cosine>=0.5"), r.reason
            assert r.diagnosis["layers"] and r.diagnosis["search"]["met"], r.diagnosis
            local_rows[(fs, device, threads)] = local_rows[("int8", device, threads)]  # so: as local int8
    assert set(ray_rows) == set(local_rows) and len(ray_rows) == 8
    for key, r in ray_rows.items():
        lr = local_rows[key]
        assert r.status == lr.status == "ok", (r.reason, lr.reason)
        if r.flag_set == QUANTIZER_FLAG_SET:  # the quantizer made it, on either executor, from the same fp32 bytes
            assert r.conversion_path == lr.conversion_path == "ai_edge_quantizer:dynamic_wi8_afp32"
        if r.flag_set in ("fp32", QUANTIZER_FLAG_SET):
            assert r.artifact == lr.artifact  # same converter, same bytes, wherever it ran
            assert r.size_bytes == lr.size_bytes
        # int8 locally is quantized from the host's shared calibration; a cluster node converts it
        # standalone: the same tensors and outputs (drift below), other conversion-metadata bytes
        assert r.ops == lr.ops
        for metric in ("max_abs", "cosine", "top1_agreement"):
            assert r.drift[metric] == pytest.approx(lr.drift[metric], abs=1e-6), metric
        assert r.latency_us["n"] >= 10 and r.device_info["model"] == "SimPhone"
    # each device's jobs ran on the node it is attached to
    for w in "AB":
        nodes = {r.device_info["ray_node_id"] for r in summary.results if r.device == lab.name(w)}
        assert nodes == {lab.nodes[w].node_id}, w
    assert {r.device_info["ray_node_ip"] for r in summary.results} == {"127.0.0.1"}  # a private lab
    # artifacts travelled by content hash into each node's own cache
    for w in "AB":
        cached = list((lab.tmp / f"node-{lab.nodes[w].node_id[:12]}" / "blobs").glob("*/*.tflite"))
        assert {p.stem for p in cached} >= {r.artifact for r in summary.results}
    # the model's preparation and its two conversions ran as Ray tasks; the search's steps did not
    assert len(run.executor.conversion_nodes) == 3


@pytest.mark.slow
def test_a_conversion_on_a_lost_node_is_retried_on_another(lab):
    """Only node C has a free CPU when the conversion starts; C dies mid-conversion."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from harness.executors import make_run

    node_c = lab.add_node(num_cpus=1)

    @ray.remote(num_cpus=1)
    def hold():
        time.sleep(600)

    holds = [hold.options(scheduling_strategy=NodeAffinitySchedulingStrategy(lab.nodes[w].node_id, soft=False)).remote()
             for w in ("head", "A", "B")]
    run = make_run(campaign(lab, flag_sets=("fp32",), devices=()), options(lab, "retry"))

    started = lab.tmp / f"node-{node_c.node_id[:12]}" / "tmp"  # a job's scratch folder, removed when it ends

    def kill_c_then_free_the_others():
        deadline = time.monotonic() + 60
        while not (started.is_dir() and any(started.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # the reference-outputs job is importing TensorFlow on C
        lab.cluster.remove_node(node_c, allow_graceful=False)
        for ref in holds:
            ray.cancel(ref, force=True)

    killer = threading.Thread(target=kill_c_then_free_the_others)
    killer.start()
    summary = run.execute()
    killer.join()
    assert any(started.iterdir()), "no job ever started on C"  # C died with a job unfinished
    assert summary.conversions_performed == 1
    assert run.executor.conversion_nodes and node_c.node_id not in run.executor.conversion_nodes
    prepared = run.builder.cache.reference_meta(run.builder._reference_key(run.campaign.models[0]))
    assert prepared is not None and prepared["has_labels"]


@pytest.mark.slow
def test_losing_a_device_node_keeps_finished_rows_and_resume_finishes_the_rest(lab, suite_cache):
    """Kill B's node once B's first row is stored; then bring B back on a new node and resume.
    How the artifacts were made is not what this checks: they come from the suite's cache."""
    import ray

    from harness.executors import make_run
    from harness.store import Store

    name_b = lab.name("B")
    killed = threading.Event()

    def on_row(result):
        if result.device == name_b and result.status == "ok" and not killed.is_set():
            killed.set()
            lab.cluster.remove_node(lab.nodes["B"], allow_graceful=False)

    events = Events(on_row=on_row)
    c = campaign(lab, threads=(1, 2))
    opts = options(lab, "lost", cache_dir=suite_cache, lost_grace_s=3.0)
    run = make_run(c, opts, events)
    t0 = time.monotonic()
    summary = run.execute()
    elapsed = time.monotonic() - t0
    assert killed.is_set()
    rows = by_key(summary.results)
    assert len(rows) == 8  # every planned row exists
    a_rows = [r for r in summary.results if r.device == lab.name("A")]
    b_rows = [r for r in summary.results if r.device == name_b]
    assert all(r.status == "ok" for r in a_rows), [r.reason for r in a_rows]
    b_ok = [r for r in b_rows if r.status == "ok"]
    b_lost = [r for r in b_rows if r.status == "device_lost"]
    assert b_ok and b_lost and len(b_ok) + len(b_lost) == 4, [(r.status, r.reason) for r in b_rows]
    assert all("node lost" in r.reason for r in b_lost), [r.reason for r in b_lost]
    # the first B row was committed before the node died, and it is still there
    first = next(r for r in events.rows if r.device == name_b)
    stored = by_key(summary.results)[(first.flag_set, first.device, first.threads)]
    assert stored.status == "ok" and stored.device_info["ray_node_id"] == lab.nodes["B"].node_id
    assert elapsed < 120
    # B comes back (a new node with its resource): --resume runs only the lost rows
    lab.nodes["B"] = lab.add_node(num_cpus=1, resources={device_resource(name_b): 1})
    db = Store(opts.store_path)
    done = db.result_keys(summary.run_id)
    db.close()
    resumed = make_run(c, options(lab, "lost", cache_dir=suite_cache, run_id=summary.run_id)).execute(resume_keys=done)
    rows = by_key(resumed.results)
    assert len(rows) == 8 and all(r.status == "ok" for r in rows.values()), [(r.status, r.reason) for r in rows.values()]
    assert resumed.conversions_performed == 0
    again = {rows[(r.flag_set, r.device, r.threads)].device_info["ray_node_id"] for r in b_lost}
    assert again == {lab.nodes["B"].node_id}
    assert ray.is_initialized()


@pytest.mark.slow
def test_cli_run_with_a_private_ray_instance_and_local(tmp_path, suite_cache):
    """`run --executor ray` without --ray-address: a private one-node Ray on this host, which
    offers the named devices' resources; `local` is measured by the driver as today."""
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'tflite-harness[ray]'")
    import json

    from tests.support.adb_device import SimulatedAdbDevice

    from .conftest import run_cli

    android = tmp_path / "android"
    pub_key = harness_adb_key(android)
    with SimulatedAdbDevice(root=tmp_path / "device", authorized_keys=[str(pub_key)]) as dev:
        proc = run_cli(
            "run", "--model", str(MODELS / "digits_cnn.keras"), "--flag-sets", "fp32",
            "--devices", f"local,adb:{dev.serial}", "--runs", "10", "--min-seconds", "0.05",
            "--eval-samples", "8", "--out", str(tmp_path / "run"), "--store", str(tmp_path / "s.sqlite"),
            "--cache-dir", str(suite_cache), "--executor", "ray", "--workers", "1",
            env={"ANDROID_USER_HOME": str(android), "HOME": str(tmp_path),
                 "TFLITE_HARNESS_NODE_CACHE": str(tmp_path / "node")},
        )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert "ray: 1 node(s)" in proc.stdout
    rows = {r["device"]: r for r in json.loads((tmp_path / "run" / "results.json").read_text())}
    local, remote = rows["local"], rows[f"adb:{dev.serial}"]
    assert local["status"] == remote["status"] == "ok", (local["reason"], remote["reason"])
    assert remote["artifact"] == local["artifact"] and remote["device_info"]["ray_node_id"]
    assert remote["device_info"]["ray_node_ip"] == "127.0.0.1"  # a private instance stays on loopback
    assert remote["drift"]["vs_local"]["max_abs"] == 0.0
    assert list((tmp_path / "node" / "blobs").glob("*/*.tflite"))
