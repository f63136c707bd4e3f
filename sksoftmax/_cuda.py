"""GPU plumbing. Imported by the estimator; ``numba.cuda`` is imported lazily.

The fused CUDA loss-and-gradient kernel is not part of this release: the
estimator's ``device`` parameter is the seam it will plug into. Until then
``device="auto"`` resolves to the CPU and ``device="cuda"`` is an error that
says why.
"""


def gpu_status():
    """Return ``(usable, reason)`` for the CUDA target, importing it lazily."""
    try:
        from numba import cuda
    except Exception as exc:  # numba without a CUDA target, or a broken install
        return False, f"numba.cuda cannot be imported ({exc})"
    try:
        if not cuda.is_available():
            return False, "no usable NVIDIA GPU or CUDA driver was found"
    except Exception as exc:
        return False, f"the CUDA driver could not be queried ({exc})"
    return True, "a usable NVIDIA GPU was found"


def resolve_device(device):
    """Map the estimator's ``device`` parameter to where the kernels run.

    Raises
    ------
    ValueError
        For ``device="cuda"``: without a usable GPU, and, with one, because
        this version has no CUDA kernel yet.
    """
    if device in ("cpu", "auto"):
        return "cpu"
    usable, reason = gpu_status()
    if not usable:
        raise ValueError(
            f"device='cuda' needs a usable NVIDIA GPU and the 'cuda' extra "
            f"(pip install 'sksoftmax[cuda]'), but {reason}. Use device='cpu' "
            f"or device='auto'."
        )
    raise ValueError(
        "device='cuda': a GPU is usable, but this version of sksoftmax has no "
        "CUDA kernel yet. Use device='cpu' or device='auto'."
    )
