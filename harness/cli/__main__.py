"""`python -m harness.cli`: the same entry point as the `tflite-harness` script."""

from harness.cli.main import main

main()
