"""pytest's root configuration."""

import os

# The CUDA kernels are tested in Numba's CUDA simulator (CI has no GPU); on a
# machine with a GPU, NUMBA_ENABLE_CUDASIM=0 runs the same tests on the
# device. pytest has imported numba already (for the NumbaWarning filter in
# pyproject.toml), and numba reads its environment at import: reload it.
if "NUMBA_ENABLE_CUDASIM" not in os.environ:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    from numba.core import config

    config.reload_config()

# sksoftmax/onnx.py needs the onnx extra: without it its doctests cannot be
# collected (tests/test_onnx.py skips by itself)
try:
    import skl2onnx  # noqa: F401
except ImportError:
    collect_ignore = ["sksoftmax/onnx.py"]
