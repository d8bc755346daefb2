"""pytest plugin (entry point `pytest11`): markers for conversion regression tests."""

from __future__ import annotations


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "tflite_harness: a conversion regression test using tflite-harness")
