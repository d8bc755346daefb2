"""tflite-harness: convert, run and compare TensorFlow Lite (LiteRT) models."""

__version__ = "0.1.0"
