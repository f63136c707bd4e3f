"""Run the benchmark: every peer on every data set of a preset.

Writes to ``--out``: ``results.json`` (raw records and the environment),
``results.md`` (tables derived from it) and PNG plots (``benchmarks/plots.py``).

Per (data set, peer): one warm-up fit (its time is reported as "first fit":
it pays Numba's compilation or cache load), then ``--repeats`` timed fits
whose median is the fit time; the common training objective
(``benchmarks/objective.py``), test accuracy and log-loss of the last fit;
and, in a child process, the peak memory of a fit above the memory held
before it. Data generation is never timed.

    python -m benchmarks.run --preset standard --out benchmarks/results
"""

import argparse
import json
import os
import platform
import time
import warnings

import numpy as np
import scipy
import sklearn
from sklearn.metrics import accuracy_score, log_loss
from threadpoolctl import threadpool_info, threadpool_limits

import sksoftmax
from benchmarks import datasets, measure, report
from benchmarks.objective import objective
from benchmarks.peers import SkSoftmax, all_peers
from benchmarks.timing import BLAS_SETTINGS

ALPHA = 1e-4
# A peer's time cap where ``Peer.capped`` says so, and the fit time above which
# a fit is timed once (its warm-up fit is the timing).
CAP_S = 60.0
LONG_S = 30.0


def presets():
    """Data sets of each preset; ``headline`` ones also get curves and a pass timing."""
    sk = [datasets.sklearn_set(n) for n in datasets.SKLEARN_SETS]
    smoke = sk[:2] + [datasets.blobs(3000, 20, 3), datasets.sparse_text(3000, 2000, 5)]
    headline = datasets.blobs(200_000, 100, 10, "float32")
    standard = sk + [
        headline,
        datasets.blobs(200_000, 100, 10, "float64"),
        datasets.blobs(100_000, 20, 2, "float32"),
        datasets.blobs(50_000, 1000, 10, "float32"),
        datasets.blobs(100_000, 100, 100, "float32"),
        datasets.sparse_text(200_000, 100_000, 20),
    ]
    scaling_n = [datasets.blobs(n, 100, 10, "float32")
                 for n in (10_000, 30_000, 100_000, 300_000, 1_000_000)]
    wide = [datasets.blobs(n, 1000, 1000, "float32") for n in (5_000, 10_000, 20_000)]
    return {
        "smoke": {"sets": smoke, "headline": [smoke[2]], "scaling": [], "wide": []},
        "standard": {"sets": standard, "headline": [headline], "scaling": scaling_n,
                     "wide": wide},
    }


def fit_timed(model, X, y):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        model.fit(X, y)
        elapsed = time.perf_counter() - start
    return elapsed, sorted({type(w.message).__name__ for w in caught})


def run_peer(peer, spec, data, repeats, memory):
    X_train, X_test, y_train, y_test = data
    record = {"dataset": spec["name"], "spec": spec, "peer": peer.name,
              "n_train": len(y_train), "n_features": X_train.shape[1],
              "n_classes": int(len(np.unique(y_train))),
              "input_bytes": datasets.nbytes(X_train)}
    reason = peer.skip(spec, len(y_train))
    if reason:
        return dict(record, status="skipped", reason=reason)
    try:
        max_iter, cap = None, peer.capped(spec, len(y_train))
        if cap:
            # one iteration's time sets max_iter so that a fit stays near CAP_S
            one, _ = fit_timed(peer.make(ALPHA, len(y_train), max_iter=1), X_train,
                               y_train)
            max_iter = max(1, int(CAP_S / max(one, 1e-9)))
            record["cap"] = {"why": cap, "cap_s": CAP_S, "max_iter": max_iter,
                             "one_iteration_s": one}
        by_blas = {}
        settings = BLAS_SETTINGS if peer.blas_sensitive else BLAS_SETTINGS[:1]
        for label, threads in settings:
            with threadpool_limits(threads, user_api="blas"):
                model = peer.make(ALPHA, len(y_train), max_iter=max_iter)
                first, warned = fit_timed(model, X_train, y_train)
                times = [first] if first > LONG_S else []
                for _ in range(repeats if not times else 0):
                    model = peer.make(ALPHA, len(y_train), max_iter=max_iter)
                    elapsed, warned = fit_timed(model, X_train, y_train)
                    times.append(elapsed)
            by_blas[label] = (float(np.median(times)), first, times, warned, model)
        blas = min(by_blas, key=lambda label: by_blas[label][0])
        _, first, times, warned, model = by_blas[blas]
        if peer.blas_sensitive:
            record["blas"] = blas
            record["fit_s_by_blas"] = {k: v[0] for k, v in by_blas.items()}
        if cap:
            record["cap"]["reached"] = peer.n_iter(model) >= max_iter
        coef, intercept = peer.linear_params(model)
        codes = np.searchsorted(model.classes_, y_train)
        proba = model.predict_proba(X_test)
        record.update(
            status="ok", first_fit_s=first, fit_times_s=times, timed_runs=len(times),
            fit_s=float(np.median(times)), n_iter=peer.n_iter(model),
            objective=objective(coef, intercept, X_train, codes, ALPHA),
            test_accuracy=float(accuracy_score(y_test, model.predict(X_test))),
            test_log_loss=float(log_loss(y_test, proba, labels=model.classes_)),
            warnings=warned)
    except Exception as exc:  # a peer failing is a result, not a crash
        return dict(record, status="error", reason=f"{type(exc).__name__}: {exc}")
    if memory:
        try:
            extra = [] if max_iter is None else [str(max_iter)]
            record.update(measure.run_child("memory", json.dumps(spec), peer.name,
                                            str(ALPHA), *extra))
        except Exception as exc:
            record["memory_error"] = str(exc)
    return record


def convergence_curve(peer, data, max_seconds=60.0):
    """Objective and test accuracy against wall time.

    Fits with max_iter = 1, 2, 3, 5, 8, ...

    Every point is a separate fit with defaults but ``max_iter``; the sweep
    ends when a fit stops before its ``max_iter`` (it converged) or takes
    longer than ``max_seconds``.
    """
    X_train, X_test, y_train, y_test = data
    codes = np.searchsorted(np.unique(y_train), y_train)
    points, max_iter, previous = [], 1, 0
    while True:
        model = peer.make(ALPHA, len(y_train), max_iter=max_iter)
        elapsed, _ = fit_timed(model, X_train, y_train)
        coef, intercept = peer.linear_params(model)
        points.append({"max_iter": max_iter, "time_s": elapsed,
                       "objective": objective(coef, intercept, X_train, codes, ALPHA),
                       "test_accuracy": float(accuracy_score(y_test,
                                                             model.predict(X_test)))})
        if peer.n_iter(model) < max_iter or elapsed > max_seconds:
            return points
        max_iter, previous = max_iter + previous if previous else 2, max_iter


def median_time(f, repeats=9):
    """Median wall time of ``repeats`` calls of ``f``, after one untimed call."""
    f()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def products_time(X, k, repeats=9):
    """Median time of ``X @ W.T`` plus ``G.T @ X`` (numpy, or scipy.sparse for CSR).

    The two products of one loss-and-gradient pass, the yardstick for it.
    """
    rng = np.random.RandomState(0)
    W = rng.randn(k, X.shape[1]).astype(X.dtype)
    G = rng.rand(X.shape[0], k).astype(X.dtype)
    return median_time(lambda: (X @ W.T, G.T @ X), repeats)


def time_one_pass(data, repeats=9):
    """One sksoftmax loss-and-gradient pass against numpy's X @ W.T + G.T @ X."""
    from sksoftmax._objective import SoftmaxObjective
    from sksoftmax._parallel import effective_n_threads

    X, _, y, _ = data
    k = len(np.unique(y))
    obj = SoftmaxObjective(X, y.astype(np.intp), np.ones(len(y)), k, alpha=ALPHA,
                           n_threads=effective_n_threads(None))
    params = np.random.RandomState(0).randn(obj.n_params) * 0.01
    numpy_s = products_time(X, k, repeats)
    with obj.parallel():
        fused_s = median_time(lambda: obj.loss_gradient(params), repeats)
    return {"numpy_matmuls_s": numpy_s, "fused_pass_s": fused_s,
            "ratio": fused_s / numpy_s, "shape": list(X.shape), "n_classes": k,
            "dtype": str(X.dtype)}


def environment():
    blas = [{k: lib.get(k) for k in ("internal_api", "num_threads", "version")}
            for lib in threadpool_info()]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "sksoftmax": sksoftmax.__version__,
        "numba": __import__("numba").__version__,
        "blas": blas,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(presets()), default="standard")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed fits after the warm-up (median reported), >= 3")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the peak-memory child processes")
    parser.add_argument("--no-compile", action="store_true",
                        help="skip the cold/warm compile-time measurement")
    parser.add_argument("--only", default=None,
                        help="run only data sets whose name contains this text")
    parser.add_argument("--parts", default="sets,scaling,wide",
                        help="comma-separated parts of the preset to run: sets (the "
                             "comparison tables, curves and pass timing), scaling (fit "
                             "time against n), wide (K = d = 1000)")
    parser.add_argument("--peers", default=None,
                        help="comma-separated texts: run only peers whose name "
                             "contains one of them")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if not parts <= {"sets", "scaling", "wide"}:
        parser.error(f"unknown part in --parts {args.parts!r}")
    wanted = None if args.peers is None else args.peers.split(",")

    def peers():
        return [p for p in all_peers()
                if wanted is None or any(w in p.name for w in wanted)]
    np.seterr(all="ignore")
    preset = presets()[args.preset]
    os.makedirs(args.out, exist_ok=True)
    results = {"environment": environment(), "alpha": ALPHA, "preset": args.preset,
               "records": [], "curves": {}, "passes": {}, "scaling": [], "wide": []}

    def save():
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(results, f, indent=1)

    def log(record):
        if record["status"] == "ok":
            print(
                f"{record['dataset']:<34} {record['peer']:<34} {record['fit_s']:9.3f}s "
                f"obj {record['objective']:.6f} acc {record['test_accuracy']:.4f}",
                flush=True,
            )
        else:
            print(f"{record['dataset']:<34} {record['peer']:<34} {record['status']}: "
                  f"{record['reason']}", flush=True)

    if not args.no_compile:
        results["compile"] = measure.compile_times()
        save()
    selected = [s for s in preset["sets"] if "sets" in parts
                and (not args.only or args.only in s["name"])]
    for spec in selected:
        data = datasets.load(spec)
        for peer in peers():
            record = run_peer(peer, spec, data, args.repeats, not args.no_memory)
            results["records"].append(record)
            log(record)
            save()
        if spec in preset["headline"]:
            results["passes"][spec["name"]] = time_one_pass(data)
            results["curves"][spec["name"]] = {
                peer.name: convergence_curve(peer, data) for peer in peers()
                if peer.skip(spec, len(data[2])) is None
                and peer.capped(spec, len(data[2])) is None}
            save()
        del data
    for spec in preset["scaling"] if "scaling" in parts else []:
        if args.only and args.only not in spec["name"]:
            continue
        data = datasets.load(spec)
        for peer in peers():
            record = run_peer(peer, spec, data, args.repeats, memory=False)
            results["scaling"].append(record)
            log(record)
            save()
        del data
    # K = d = 1000: sksoftmax alone, a fixed number of L-BFGS iterations, to
    # show the time grows linearly in n and the memory holds.
    wide_peer = SkSoftmax("lbfgs")
    for spec in preset["wide"] if "wide" in parts else []:
        if args.only and args.only not in spec["name"]:
            continue
        data = datasets.load(spec)
        elapsed, _ = fit_timed(
            wide_peer.make(ALPHA, len(data[2]), max_iter=10), *data[::2]
        )
        times = [
            fit_timed(wide_peer.make(ALPHA, len(data[2]), max_iter=10), *data[::2])[0]
            for _ in range(args.repeats)
        ]
        record = {"dataset": spec["name"], "n_train": len(data[2]), "max_iter": 10,
                  "first_fit_s": elapsed, "fit_s": float(np.median(times)),
                  "input_bytes": datasets.nbytes(data[0])}
        if not args.no_memory:
            record.update(measure.run_child("memory", json.dumps(spec), wide_peer.name,
                                            str(ALPHA), "10"))
        results["wide"].append(record)
        print(
            f"{spec['name']:<34} sksoftmax(lbfgs, 10 iterations) "
            f"{record['fit_s']:.3f}s",
            flush=True,
        )
        save()
        del data
    save()
    report.write_markdown(results, os.path.join(args.out, "results.md"))
    from benchmarks import plots  # matplotlib: the benchmark extra

    plots.plot_all(results, args.out)
    print(f"wrote {args.out}/results.json, results.md and plots")


if __name__ == "__main__":
    main()
