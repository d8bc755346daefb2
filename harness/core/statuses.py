"""Result statuses: every row carries one, with a one-line reason unless `ok`."""

from __future__ import annotations

OK = "ok"
UNHEALTHY = "unhealthy"
CONVERSION_FAILED = "conversion_failed"
RUNTIME_FAILED = "runtime_failed"
UNSUPPORTED = "unsupported"
DEVICE_LOST = "device_lost"
TIMEOUT = "timeout"

ALL = (OK, UNHEALTHY, CONVERSION_FAILED, RUNTIME_FAILED, UNSUPPORTED, DEVICE_LOST, TIMEOUT)

DESCRIPTIONS = {
    OK: "converted, ran, outputs healthy",
    UNHEALTHY: "ran, but outputs are NaN, Inf, all-zero, constant or far from the original",
    CONVERSION_FAILED: "the converter refused the model under this flag set, or crashed",
    RUNTIME_FAILED: "the artifact was converted but could not be loaded or run",
    UNSUPPORTED: "no runtime available here can run the artifact (Flex or custom ops)",
    DEVICE_LOST: "the device stopped answering before the job finished",
    TIMEOUT: "the job took longer than its timeout and was stopped",
}
