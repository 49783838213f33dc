"""portlint: will this ONNX model run on that NPU, and what do I change so that it does."""

__version__ = "0.1.0"
