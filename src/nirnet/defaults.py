"""Defaults that both the library and the command line use, in a module that imports nothing heavy: the CLI takes
its option defaults from here (and from the config classes) instead of restating them, and builds its help without
importing torch."""

from __future__ import annotations

#: Where the forward pass runs (see :mod:`nirnet.runtime`): ONNX Runtime on the CPU when it can, else PyTorch.
DEFAULT_BACKEND = "auto"
DEFAULT_DEVICE = "cpu"
#: Crops per forward pass.
DEFAULT_BATCH_SIZE = 32
#: DataLoader workers that decode and crop images while the model runs (2: the cores of a small machine).
DEFAULT_WORKERS = 2
#: The ONNX opset of every export (the runtime cache's fingerprint includes it).
ONNX_OPSET = 18
#: Paths per chunk of `nirnet scale`: the unit of work and of resume.
DEFAULT_CHUNK_SIZE = 256
