"""Worker scripts: each runs inside a vendor toolchain's own interpreter, imports nothing from
portlint, and writes what the toolchain returned to ``result.json`` in its working folder."""
