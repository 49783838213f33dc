"""Model I/O: read, validate and write ONNX models without ever copying a weight needlessly.

- ``load``: a model for checking (weights left out, shapes inferred) or for fixing.
- ``validate``: one clear line for each way a model file can be bad.
- ``wire``: reading a protobuf file without its weight bytes.
- ``payload``: one initializer's bytes from the file, when a rule needs them.
- ``loaded``: what a loaded model is, and which initializers keep their values.
- ``weightless``: light copies without weights, for inference, the checker and proofs.
- ``write``: atomic writes that never damage the input.

Everything above the loading layer reads models through this package.
"""
