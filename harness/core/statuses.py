"""Result statuses: every row carries one, with a one-line reason unless `ok`."""

from __future__ import annotations

OK = "ok"
UNHEALTHY = "unhealthy"
CONVERSION_FAILED = "conversion_failed"
RUNTIME_FAILED = "runtime_failed"
UNSUPPORTED = "unsupported"
DEVICE_LOST = "device_lost"
TIMEOUT = "timeout"
INPUT_ERROR = "input_error"
LATENCY_ONLY = "latency_only"

ALL = (OK, UNHEALTHY, CONVERSION_FAILED, RUNTIME_FAILED, UNSUPPORTED, DEVICE_LOST, TIMEOUT, INPUT_ERROR, LATENCY_ONLY)
# Rows whose latency and memory figures were measured and hold (LATENCY_ONLY: the outputs were not).
MEASURED = (OK, LATENCY_ONLY)

# Failure categories of INPUT_ERROR rows: the sample data does not fit the model, or a .tflite
# does not take its original's inputs. Nothing was converted or run.
SAMPLE_DATA = "sample_data"
INPUT_MISMATCH = "input_mismatch"
INPUT_CATEGORIES = (SAMPLE_DATA, INPUT_MISMATCH)
# Failure category of a job whose executor node was lost (not the model's fault; `--resume` reruns it)
NODE_LOST = "node_lost"


def for_category(category: str | None, default: str) -> str:
    """The status of a failure with CATEGORY: INPUT_ERROR for the input categories, else DEFAULT."""
    return INPUT_ERROR if category in INPUT_CATEGORIES else default

DESCRIPTIONS = {
    OK: "converted, ran, outputs healthy",
    UNHEALTHY: "ran, but outputs are NaN, Inf, all-zero, constant or far from the original",
    CONVERSION_FAILED: "the converter refused the model under this flag set, or crashed",
    RUNTIME_FAILED: "the artifact was converted but could not be loaded or run",
    UNSUPPORTED: "no runtime available here can run the artifact (Flex or custom ops)",
    DEVICE_LOST: "the device stopped answering before the job finished",
    TIMEOUT: "the job took longer than its timeout and was stopped",
    LATENCY_ONLY: "latency and memory were measured and hold; the outputs (health, drift) were not: the step "
                  "that computes them failed, and the reason names it and what it printed",
    INPUT_ERROR: "the sample data (or a .tflite's original) does not fit the model's inputs; nothing was converted or run",
}
