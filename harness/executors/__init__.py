"""Executors: where a campaign's jobs run.

One small protocol (`base.py`: `Executor` makes the run's `Builder` and its device
`Dispatch`). `local` (the default, `local.py`): converter worker processes and one thread
per device on this host. `ray` (`ray_run.py`) spreads the same jobs over a Ray cluster:
conversions on any node, each device's jobs on the node it is attached to. Both write
the same rows to the same store; only the driver (`CampaignRun`) writes.
"""

from __future__ import annotations

from harness.core.errors import UsageError

EXECUTORS = ("local", "ray")
INSTALL_HINT = "the ray executor needs Ray: pip install 'tflite-harness[ray]'"


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def require_ray() -> None:
    """One line and exit 2 when Ray is missing (it is an optional extra)."""
    if not ray_available():
        raise UsageError(INSTALL_HINT)


def make_executor(options, devices: tuple[str, ...] = ()):
    """The `Executor` that `options.executor` names; DEVICES are the campaign's (Ray offers them)."""
    if options.executor not in EXECUTORS:
        raise UsageError(f"--executor {options.executor!r}: choose one of {', '.join(EXECUTORS)}")
    if options.executor == "ray":
        require_ray()
        from harness.executors.ray_run import RayExecutor

        return RayExecutor(options, tuple(devices))
    from harness.executors.local import LocalExecutor

    return LocalExecutor()


def make_run(campaign, options, events=None):
    """A CampaignRun whose jobs go to the executor `options.executor` names."""
    from harness.pipeline.campaign import CampaignRun

    executor = make_executor(options, campaign.devices)
    return CampaignRun(campaign, options, events, executor=executor)
