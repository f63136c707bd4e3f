"""The GPU backend: where the fused pass runs, and the objective that runs it there.

``numba.cuda`` (the ``cuda`` extra, ``numba-cuda``) is imported only to
check for a GPU and when the GPU path is chosen; the kernels are in
``_cuda_kernels``. :class:`CudaObjective` is the in-memory
:class:`~sksoftmax._objective.SoftmaxObjective` with its passes and its
minibatch epochs on the device; everything computed once per fit (the
step-size constants, the curvature estimate) stays on the CPU.
"""

import contextlib

import numpy as np

from ._objective import SoftmaxObjective
from ._steps import SCHEDULES

# device="auto" takes the GPU from this many entries of X (rows x features,
# or nonzeros) on: below, copying X to the device and the launches cost
# more than a CPU fit. A first guess from the CPU pass's speed (about 4e8
# entries a second on 2 cores); to be measured on a GPU.
AUTO_MIN_ENTRIES = 2**24


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


def resolve_device(device, n_entries=None, n_classes=None):
    """Map the estimator's ``device`` parameter to where the kernels run.

    Parameters
    ----------
    device : {"cpu", "cuda", "auto"}
    n_entries : int, default=None
        Entries of X (nonzeros when sparse); None: only check the setting.
    n_classes : int, default=None

    Returns
    -------
    "cpu" or "cuda"

    Raises
    ------
    ValueError
        For ``device="cuda"`` without a usable GPU, or with more classes than
        the GPU kernels hold.
    """
    if device == "cpu":
        return "cpu"
    if device == "auto":
        if n_entries is None or n_entries < AUTO_MIN_ENTRIES:
            return "cpu"
        if n_classes is not None and n_classes > _max_logits():
            return "cpu"
        return "cuda" if gpu_status()[0] else "cpu"
    usable, reason = gpu_status()
    if not usable:
        raise ValueError(
            f"device='cuda' needs a usable NVIDIA GPU and the 'cuda' extra "
            f"(pip install 'sksoftmax[cuda]'), but {reason}. Use device='cpu' "
            f"or device='auto'."
        )
    if n_classes is not None and n_classes > _max_logits():
        raise ValueError(
            f"device='cuda' handles at most {_max_logits()} classes; got "
            f"{n_classes}. Use device='cpu'.")
    return "cuda"


def _max_logits():
    from ._cuda_kernels import MAX_LOGITS
    return MAX_LOGITS


class CudaObjective(SoftmaxObjective):
    """:class:`SoftmaxObjective` whose passes and minibatch epochs run on the GPU.

    X, the labels and the weights are copied to the device once, at
    construction. A pass moves only the parameters there and the gradient
    sums (and the per-block loss sums) back; a minibatch epoch moves the
    optimiser's state there at its start and back at its end. Same
    parameters as :class:`SoftmaxObjective` (``n_threads`` and
    ``sparse_copy`` do not apply: a CSR X gets a CSC copy on the device).
    """

    def __init__(self, X, y, sample_weight, n_classes, **kwargs):
        kwargs.update(n_threads=1, sparse_copy=False)
        super().__init__(X, y, sample_weight, n_classes, **kwargs)
        from . import _cuda_kernels
        self._kernels = _cuda_kernels
        self._device = _cuda_kernels.DeviceData(X, y, sample_weight, self.n_logits,
                                                self.fit_intercept)

    def parallel(self):
        """The device runs the pass: no threads to start."""
        return contextlib.nullcontext(self)

    def _sums_into(self, params, scale, l2):
        # the device takes the model's own coordinates; the centring is done here
        loss_sum, grad_sum = self._kernels.loss_gradient_sums(
            self._device, self.model_vector(params), self.label_smoothing,
            self.binary, self.X)
        np.multiply(grad_sum, scale, out=self._grad)
        self.centre_gradient(self._grad)
        if l2:
            coef, _ = self.unpack(params)
            grad_coef, _ = self.unpack(self._grad)
            with np.errstate(over="ignore", invalid="ignore"):
                grad_coef += l2 * coef
        return loss_sum

    @property
    def variance_reduction(self):
        """False: the SVRG epochs have no device kernel yet, so after the first
        epoch a GPU fit finishes full batch (every pass on the device)."""
        return False

    def minibatch_epoch(self, state, order, batch_size, rule):
        """:meth:`SoftmaxObjective.minibatch_epoch` on the device: every step
        updates every parameter (on CSR input that is exact SGD, as the
        CPU's lazy steps are; Adam is dense Adam, not the CPU's lazy Adam).
        The device's steps are in the model's own coordinates: with a centre
        the iterate and its average are moved there for the epoch and back."""
        if self.center is not None:
            state.params[:] = self.model_vector(state.params)
            state.average[:] = self.model_vector(state.average)
        total, weight, diverged = self._kernels.minibatch_epoch(
            self._device, self.X, self.sample_weight, state, order, batch_size,
            rule, self.l2_strength(), self.l1_strength(), self.label_smoothing,
            self.binary, SCHEDULES[rule.learning_rate])
        if self.center is not None:
            state.params[:] = self.init_params(*self.unpack(state.params))
            state.average[:] = self.init_params(*self.unpack(state.average))
        diverged = diverged or not np.all(np.isfinite(state.params))
        return (total / weight if weight > 0 else 0.0), diverged
