"""Keep a private Ray instance on loopback: nothing of it may leave this machine.

A Ray started here with no address (`run --executor ray` without `--ray-address`, the
test suite's own clusters) is this host alone, so no packet of it needs the network.
Ray 2.x reaches out anyway, in three places (traced with strace; Ray 2.60's source):

- **The node address.** `ray._private.services.get_node_ip_address` asks the kernel which
  address would route to 8.8.8.8 (a UDP `connect`, `node_ip_address_from_perspective`;
  no packet, but an outside address all the same) and every Ray process then talks over
  the machine's network address, not loopback. `ray.init(_node_ip_address="127.0.0.1")`
  and `ray start --node-ip-address 127.0.0.1` do not help: `resolve_ip_for_localhost`
  turns loopback back into that address. Ray's own single-machine mode (the default on
  macOS and Windows, `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`) uses 127.0.0.1 instead; it
  is read when `ray` is imported, so the child processes get it from the environment and
  the driver, which has imported Ray already, gets the same constant set while it starts.
- **The cloud probe.** The dashboard process (started even with `include_dashboard=False`,
  for its `UsageStatsHead` module) asks 169.254.169.254 and metadata.google.internal
  (a DNS lookup first) which cloud it runs on, whether or not usage statistics are on
  (`usage_lib.get_cloud_from_metadata_requests`). It uses `requests`, which honours the
  standard proxy variables: pointed at a closed loopback port, the probe fails at once
  on this machine and resolves no name. Ray's gRPC, which reads the lowercase ones too,
  is told by `no_proxy` to go direct to loopback.
- **Accelerators.** On a TPU VM the TPU manager asks the GCE metadata server for the
  TPU's type; a private instance asks for no GPU and no TPU (`num_gpus=0`,
  `resources={"TPU": 0}`), so no manager is consulted. Usage statistics are off
  (`RAY_USAGE_STATS_ENABLED=0`; `ray.init` turns them off too).

A cluster the user names (`--ray-address ADDR|auto`) is left exactly as Ray makes it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

LOOPBACK = "127.0.0.1"
DEAD_PROXY = "http://127.0.0.1:9"  # discard port: nothing listens, so a request fails at once
NO_PROXY = "127.0.0.1,localhost,::1"
ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "http_proxy": DEAD_PROXY, "HTTP_PROXY": DEAD_PROXY,
    "https_proxy": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY,
    "no_proxy": NO_PROXY, "NO_PROXY": NO_PROXY,
}
NO_ACCELERATORS = {"TPU": 0}  # with num_gpus=0: no accelerator manager is asked


@contextmanager
def loopback_only() -> Iterator[None]:
    """While Ray processes start: the environment they inherit, and the driver's node address.

    Every Ray process started inside (head, nodes, their workers, which the raylet starts
    later with the environment it got now) stays on 127.0.0.1; this process's environment
    is put back afterwards, so nothing else the harness runs sees these variables.
    """
    from ray._private import ray_constants

    saved = {k: os.environ.get(k) for k in ENV}
    cluster_mode = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)  # Ray 2.x; the test notices if it goes
    os.environ.update(ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if cluster_mode is None:
            del ray_constants.ENABLE_RAY_CLUSTER
        else:
            ray_constants.ENABLE_RAY_CLUSTER = cluster_mode
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
