"""The `tflite-harness` command (`harness.cli.main:main`): one module per command group,
parsing and printing only.

Heavy modules (TensorFlow, the pipeline, reports) are imported inside the commands, so
`tflite-harness --help` starts in a tenth of a second.
"""
