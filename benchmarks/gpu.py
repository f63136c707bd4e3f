"""The GPU path: fits per solver, the pass's bandwidth, CuPy and PyTorch beside it.

For float32 problems shaped like users' data (d = 100, K = 10; d = 784,
K = 10; d = 3072, K = 100; CSR text 10^5 features, K = 20) at 10^5 to 10^7
rows (capped where X would not fit the device):

- fits of ``device="cuda"`` for ``lbfgs``, ``sgd`` and ``adam`` (default
  parameters; time, iterations, training objective, test accuracy), and of
  ``device="cpu"`` ``lbfgs`` up to ``--cpu-max-rows`` rows (the ≥ 20× target
  is on 10^6 × 100, K = 10);
- one loss-and-gradient pass of ours (median of 5 after a warm-up, the
  parameters' and the gradient's copies included) as achieved bandwidth,
  ``X``'s bytes over the time, and its share of the device's peak (memory
  clock × bus width);
- the unfused reference pass with CuPy: ``X @ W.T`` and ``R.T @ X`` by
  cuBLAS around a softmax of CuPy array operations;
- PyTorch on the same GPU and objective: ``torch.optim.LBFGS`` (strong
  Wolfe, the same gradient tolerance) and minibatch SGD / Adam loops
  (``benchmarks.peers.TorchSoftmax``), capped at ``--cap`` seconds.

Peers that are not installed are recorded as missing, never dropped
silently. Writes ``gpu.json``, ``gpu.md`` and ``gpu.png``.

    python -m benchmarks.gpu --out docs/benchmark_results/gpu
    python -m benchmarks.gpu --quick --out /tmp/gpu   # small sizes only
"""

import argparse
import json
import os
import time
import warnings

import numpy as np

from benchmarks import datasets
from benchmarks.objective import objective
from benchmarks.run import environment

SHAPES = [  # (name, d, k, row counts)
    ("dense d=100 K=10", 100, 10, (10**5, 10**6, 10**7)),
    ("dense d=784 K=10", 784, 10, (10**5, 10**6)),
    ("dense d=3072 K=100", 3072, 100, (10**5, 10**6)),
]
TEXT = ("CSR 10^5 features K=20", 100_000, 20, (10**5, 10**6))


def make_dense(n, d, k, seed=0):
    """float32 rows N(0, 1) and labels from a softmax teacher, plus a test set
    of n / 10 rows (the generator of ``benchmarks.scaleout``)."""
    from benchmarks.scaleout import make_chunk
    X, y = make_chunk(0, n + n // 10, d, k, seed=seed)
    return X[:n], X[n:], y[:n], y[n:]


def make_text(n, d, k):
    return datasets.load(datasets.sparse_text(n, d, k))


def device_peak_bandwidth():
    """Bytes per second: memory clock (kHz) x 2 (DDR) x bus width (bits) / 8."""
    from numba import cuda
    device = cuda.get_current_device()
    return (device.MEMORY_CLOCK_RATE * 1e3 * 2
            * device.GLOBAL_MEMORY_BUS_WIDTH / 8)


def median_time(f, repeats=5, sync=None):
    f()
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        if sync:
            sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def fit_record(model, X, y, X_test, y_test, alpha, cap=None):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    seconds = time.perf_counter() - start
    codes = np.searchsorted(model.classes_, y)
    return {"fit_s": seconds, "n_iter": int(np.max(model.n_iter_)),
            "objective": objective(model.coef_, model.intercept_, X, codes, alpha),
            "test_accuracy": float(np.mean(model.predict(X_test) == y_test)),
            "capped": bool(cap and seconds > cap)}


def our_pass(X, y, k):
    from sksoftmax._cuda import CudaObjective
    obj = CudaObjective(X, y.astype(np.intp), np.ones(len(y)), k, alpha=1e-4)
    params = np.random.default_rng(0).standard_normal(obj.n_params) * 0.01
    return median_time(lambda: obj.loss_gradient(params)), bool(
        getattr(obj._device, "fused", False))


def cupy_pass(X, y, k):
    """The unfused pass: two cuBLAS GEMMs around CuPy's softmax."""
    import cupy as cp
    X_d = cp.asarray(X)
    y_d = cp.asarray(y)
    W = cp.asarray(np.random.default_rng(0).standard_normal((k, X.shape[1]))
                   .astype(X.dtype) * 0.01)
    b = cp.zeros(k, dtype=X.dtype)

    def run():
        Z = X_d @ W.T + b
        Z -= Z.max(axis=1, keepdims=True)
        P = cp.exp(Z)
        total = P.sum(axis=1, keepdims=True)
        loss = float((cp.log(total[:, 0]) - Z[cp.arange(len(y_d)), y_d]).sum())
        P /= total
        P[cp.arange(len(y_d)), y_d] -= 1
        G = P.T @ X_d
        return loss, G.get(), P.sum(axis=0).get()

    return median_time(run, sync=cp.cuda.Device().synchronize)


def run_case(name, X, X_test, y, y_test, k, args, record):
    from sksoftmax import SoftmaxRegressionClassifier
    alpha = 1.0 / X.shape[0]  # C = 1, as the other benchmarks
    n = X.shape[0]
    record.update(name=name, rows=n, features=X.shape[1], classes=k,
                  sparse=hasattr(X, "indptr"),
                  x_bytes=int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
                              if hasattr(X, "indptr") else X.nbytes))
    for solver in ("lbfgs", "sgd", "adam"):
        record[f"ours_cuda_{solver}"] = fit_record(
            SoftmaxRegressionClassifier(solver=solver, alpha=alpha, device="cuda",
                                        random_state=0,
                                        max_iter=args.max_iter or 1000),
            X, y, X_test, y_test, alpha)
    if n <= args.cpu_max_rows:
        record["ours_cpu_lbfgs"] = fit_record(
            SoftmaxRegressionClassifier(alpha=alpha), X, y, X_test, y_test, alpha)
    pass_s, fused = our_pass(X, y, k)
    record.update(pass_s=pass_s, fused=fused,
                  bandwidth=record["x_bytes"] / pass_s,
                  peak_share=record["x_bytes"] / pass_s / args.peak_bandwidth)
    if not record["sparse"]:
        try:
            record["cupy_pass_s"] = cupy_pass(X, y, k)
        except ImportError:
            record["cupy_pass_s"] = "cupy not installed"
        try:
            from benchmarks.peers import TorchSoftmax
            for optimizer in ("lbfgs", "sgd", "adam"):
                model = TorchSoftmax(optimizer, alpha, device="cuda",
                                     max_iter=None if optimizer == "lbfgs" else 50)
                record[f"torch_cuda_{optimizer}"] = fit_record(
                    model, X, y, X_test, y_test, alpha, cap=args.cap)
        except ImportError:
            record["torch"] = "torch not installed"
    return record


def write_markdown(records, env, path):
    lines = ["# GPU: fits, the pass's bandwidth, CuPy and PyTorch", "",
             f"`python -m benchmarks.gpu` on {env.get('gpu', 'a GPU')}. Fits at "
             "C = 1 (alpha = 1/n), default parameters, float32; pass: one "
             "loss-and-gradient evaluation, median of 5.", "",
             "| data | rows | solver | ours GPU (s) | objective | test acc | "
             "ours CPU (s) | torch GPU (s) | torch objective | torch acc |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    def fit_cells(fit):
        if not isinstance(fit, dict):
            return ["-", "-", "-"]
        capped = " (capped)" if fit["capped"] else ""
        return [f"{fit['fit_s']:.2f}{capped}", f"{fit['objective']:.6f}",
                f"{fit['test_accuracy']:.4f}"]

    for r in records:
        for solver in ("lbfgs", "sgd", "adam"):
            cpu = r.get("ours_cpu_lbfgs") if solver == "lbfgs" else None
            cells = [r["name"], f"{r['rows']:,}", solver,
                     *fit_cells(r[f"ours_cuda_{solver}"]),
                     f"{cpu['fit_s']:.2f}" if cpu else "-",
                     *fit_cells(r.get(f"torch_cuda_{solver}"))]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| data | rows | X (GiB) | pass (ms) | kernel | GB/s | share of peak "
              "| CuPy two-GEMM pass (ms) |", "|---|---:|---:|---:|---|---:|---:|---:|"]
    for r in records:
        cupy = r.get("cupy_pass_s")
        cupy = f"{cupy * 1e3:.1f}" if isinstance(cupy, float) else (cupy or "-")
        kernel = "csr" if r["sparse"] else ("fused" if r["fused"] else "two-kernel")
        lines.append(f"| {r['name']} | {r['rows']:,} | {r['x_bytes'] / 2**30:.2f} | "
                     f"{r['pass_s'] * 1e3:.1f} | {kernel} | "
                     f"{r['bandwidth'] / 1e9:.0f} | {r['peak_share']:.0%} | {cupy} |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def plot(records, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.plots import readable_log_ticks
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in dict.fromkeys(r["name"] for r in records):
        rs = [r for r in records if r["name"] == name]
        ax.plot([r["rows"] for r in rs], [r["peak_share"] for r in rs], "o-",
                label=name)
    ax.set_xscale("log")
    ax.set_xlabel("rows")
    ax.set_ylabel("pass bandwidth / device peak")
    ax.legend()
    fig.tight_layout()
    for each in [ax]:
        readable_log_ticks(each)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/gpu")
    parser.add_argument("--quick", action="store_true",
                        help="10^5 rows only (and 10^4 for the text set)")
    parser.add_argument("--cpu-max-rows", type=int, default=10**6)
    parser.add_argument("--cap", type=float, default=120.0)
    parser.add_argument("--max-bytes", type=float, default=16e9,
                        help="skip cases whose X is larger")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="cap our fits' iterations (a smoke test)")
    parser.add_argument("--rows", type=int, default=None,
                        help="one row count for every case (a smoke test, e.g. in "
                             "the CUDA simulator)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    env = environment()
    from numba import config, cuda
    if not cuda.is_available():
        raise SystemExit("no usable CUDA device (or simulator)")
    name = getattr(cuda.get_current_device(), "name", "the CUDA simulator")
    env["gpu"] = name.decode() if isinstance(name, bytes) else str(name)
    # the simulator has no memory clock: its shares are NaN
    args.peak_bandwidth = (float("nan") if config.ENABLE_CUDASIM
                           else device_peak_bandwidth())
    env["peak_bandwidth"] = args.peak_bandwidth
    records = []
    def sizes(rows):
        if args.rows:
            return (args.rows,)
        return rows[:1] if args.quick else rows

    cases = [(name, d, k, sizes(rows)) for name, d, k, rows in SHAPES]
    for name, d, k, rows in cases:
        for n in rows:
            if n * d * 4 > args.max_bytes:
                continue
            X, X_test, y, y_test = make_dense(n, d, k)
            records.append(run_case(name, X, X_test, y, y_test, k, args, {}))
            print(json.dumps(records[-1]), flush=True)
    name, d, k, rows = TEXT
    for n in ((10**4,) if args.quick and not args.rows else sizes(rows)):
        X, X_test, y, y_test = make_text(n, d, k)
        records.append(run_case(name, X, X_test, y, y_test, k, args, {}))
        print(json.dumps(records[-1]), flush=True)
    with open(os.path.join(args.out, "gpu.json"), "w") as f:
        json.dump({"environment": env, "records": records}, f, indent=1)
    write_markdown(records, env, os.path.join(args.out, "gpu.md"))
    plot(records, os.path.join(args.out, "gpu.png"))
    print(open(os.path.join(args.out, "gpu.md")).read())


if __name__ == "__main__":
    main()
