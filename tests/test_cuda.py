"""The CUDA kernels against the CPU kernels, in Numba's CUDA simulator.

The root ``conftest.py`` turns the simulator on (``NUMBA_ENABLE_CUDASIM=1``)
unless the environment says otherwise; with ``NUMBA_ENABLE_CUDASIM=0`` on a
machine with a GPU the same tests run on the device. The simulator runs
every GPU thread as a Python thread: the data are tiny.
"""

import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose
from sklearn.datasets import make_classification

from sksoftmax import SoftmaxRegressionClassifier
from sksoftmax._objective import SoftmaxObjective

cuda = pytest.importorskip("numba.cuda")
if not cuda.is_available():  # pragma: no cover - simulator off and no GPU
    pytest.skip("no CUDA device and the simulator is off", allow_module_level=True)

from sksoftmax import _cuda, _cuda_kernels  # noqa: E402


def data(n=24, d=5, n_classes=3, dtype=np.float64, sparse=False, seed=0):
    X, y = make_classification(n, d, n_informative=3, n_redundant=0,
                               n_classes=n_classes, random_state=seed)
    X = X.astype(dtype)
    X[np.abs(X) < 0.4] = 0  # some zeros for CSR
    return (sp.csr_matrix(X) if sparse else X), y.astype(np.intp)


@pytest.mark.parametrize("kernel", ["fused", "two-kernel", "csr"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_pass_equals_the_cpu_pass(kernel, dtype, n_classes, fit_intercept):
    # 40 features: two feature tiles of the dense kernels
    X, y = data(d=40, dtype=dtype, sparse=kernel == "csr", n_classes=n_classes)
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    kwargs = dict(alpha=0.1, label_smoothing=0.1, fit_intercept=fit_intercept)
    cpu = SoftmaxObjective(X, y, w, n_classes, **kwargs)
    gpu = _cuda.CudaObjective(X, y, w, n_classes, **kwargs)
    assert gpu._device.fused == (kernel != "csr")  # small dense models fuse
    gpu._device.fused = kernel == "fused"
    params = np.random.default_rng(1).standard_normal(cpu.n_params) * 0.2
    loss, grad = cpu.loss_gradient(params)
    grad = grad.copy()
    before = dict(_cuda_kernels.LAUNCHES)
    loss_gpu, grad_gpu = gpu.loss_gradient(params)
    name = {"fused": "_fused_dense", "two-kernel": "_residuals_dense",
            "csr": "_residuals_csr"}[kernel]
    assert _cuda_kernels.LAUNCHES[name] == before.get(name, 0) + 1
    # float32: the CPU forms logits in float32, the GPU in float64
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert_allclose(loss_gpu, loss, rtol=rtol)
    assert_allclose(grad_gpu, grad, rtol=rtol, atol=rtol * np.abs(grad).max())
    sums_cpu = cpu.loss_gradient_sums(params)
    sums_gpu = gpu.loss_gradient_sums(params)
    assert_allclose(sums_gpu[0], sums_cpu[0], rtol=rtol)
    assert_allclose(sums_gpu[1], sums_cpu[1], rtol=rtol,
                    atol=rtol * np.abs(sums_cpu[1]).max())


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("solver", ["lbfgs", "sgd", "adam"])
def test_cuda_fit_is_the_cpu_fit(solver, sparse):
    X, y = data(n=20, dtype=np.float32, sparse=sparse)
    params = dict(solver=solver, shuffle=False, random_state=0)
    if solver == "lbfgs":
        params["max_iter"] = 15
    else:
        # a first epoch of 2 minibatches, then (no SVRG kernel on the device)
        # full batch to the optimum, which the CPU's SVRG epochs reach too.
        # Well conditioned (alpha) and a tol float32 parameters can meet: on
        # a flat problem at tol=1e-6 the line search took ~12 passes an
        # iteration, each a slow launch in the simulator.
        params.update(batch_size=10, tol=1e-5, alpha=0.05)
    cpu = SoftmaxRegressionClassifier(device="cpu", **params).fit(X, y)
    before = dict(_cuda_kernels.LAUNCHES)
    gpu = SoftmaxRegressionClassifier(device="cuda", **params).fit(X, y)
    launched = {name: count - before.get(name, 0)
                for name, count in _cuda_kernels.LAUNCHES.items()}
    residuals = "_residuals_csr" if sparse else "_fused_dense"
    assert launched.get(residuals, 0) > 0
    assert gpu.coef_.dtype == np.float32
    if solver != "lbfgs":
        # two optima to tol=1e-5, reached by different paths
        assert_allclose(gpu.predict_proba(X), cpu.predict_proba(X), atol=2e-4)
        assert launched.get(f"_{solver}_step", 0) == 2
        assert gpu.loss_curve_[-1] == pytest.approx(cpu.loss_curve_[-1], rel=1e-5)
        return
    assert gpu.n_iter_ == cpu.n_iter_
    assert_allclose(gpu.predict_proba(X), cpu.predict_proba(X), atol=1e-4)
    assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=1e-4)


def test_cuda_minibatch_rules_match_the_cpu():
    """L1 prox, momentum without Nesterov, averaging from the first step,
    the intercept's scaled step, weights: the same state after two epochs
    (of ``partial_fit``, which runs the rule's epochs and nothing else)."""
    X, y = data(n=20)
    w = np.random.default_rng(2).uniform(0.0, 2.0, len(y))
    params = dict(solver="sgd", shuffle=False, batch_size=7,
                  l1_ratio=0.5, alpha=0.05, nesterovs_momentum=False,
                  learning_rate="invscaling", eta0=0.1)

    def two_epochs(**params):
        clf = SoftmaxRegressionClassifier(**params)
        for _ in range(2):
            clf.partial_fit(X, y, classes=np.unique(y), sample_weight=w)
        return clf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cpu = two_epochs(device="cpu", **params)
        gpu = two_epochs(device="cuda", **params)
        averaged = dict(params, l1_ratio=0.0, solver="adam", average=1, eta0="auto")
        cpu_avg = two_epochs(device="cpu", **averaged)
        gpu_avg = two_epochs(device="cuda", **averaged)
    assert_allclose(gpu.coef_, cpu.coef_, rtol=1e-9, atol=1e-12)
    assert np.array_equal(gpu.coef_ == 0, cpu.coef_ == 0)
    assert_allclose(gpu.intercept_, cpu.intercept_, rtol=1e-9)
    assert_allclose(gpu_avg.coef_, cpu_avg.coef_, rtol=1e-9, atol=1e-12)
    for name in ("velocity", "m", "v", "average"):
        assert_allclose(getattr(gpu._minibatch_state, name),
                        getattr(cpu._minibatch_state, name), rtol=1e-9, atol=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_auto_picks_the_gpu_only_for_large_problems(monkeypatch):
    X, y = data()
    before = _cuda_kernels.LAUNCHES.total()
    SoftmaxRegressionClassifier(device="auto", max_iter=3).fit(X, y)
    assert _cuda_kernels.LAUNCHES.total() == before  # tiny: the CPU
    monkeypatch.setattr(_cuda, "AUTO_MIN_ENTRIES", X.size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SoftmaxRegressionClassifier(device="auto", max_iter=3).fit(X, y)
    assert _cuda_kernels.LAUNCHES.total() > before
    monkeypatch.setattr(_cuda, "_max_logits", lambda: 2)
    with pytest.raises(ValueError, match="device='cuda' handles at most 2 classes"):
        SoftmaxRegressionClassifier(device="cuda").fit(X, y)
    # "auto" goes back to the CPU instead
    launched = _cuda_kernels.LAUNCHES.total()
    SoftmaxRegressionClassifier(device="auto", max_iter=3).fit(X, y)
    assert _cuda_kernels.LAUNCHES.total() == launched


def test_bad_input_is_the_same_error_on_either_device():
    X, y = data()
    X[3, 1] = np.nan
    for device in ("cpu", "cuda"):
        with pytest.raises(ValueError, match="Input X contains NaN"):
            SoftmaxRegressionClassifier(device=device).fit(X, y)


def test_numba_cuda_is_imported_only_for_the_gpu_path():
    code = ("import sys; from sklearn.datasets import load_iris; "
            "from sksoftmax import SoftmaxRegressionClassifier; "
            "SoftmaxRegressionClassifier(max_iter=5).fit(*load_iris(return_X_y=True))"
            "; print('numba.cuda' in sys.modules)")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
