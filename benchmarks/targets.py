"""Time to LogisticRegression's objective, with a breakdown of where it goes.

For each data set: ``LogisticRegression(lbfgs)`` at its defaults (``C``,
``tol=1e-4``; ``max_iter=1000``) sets the reference objective ``f_LR``
(``benchmarks/objective.py``, float64). sksoftmax(lbfgs) is then timed to the
same quality: its first iteration count ``k`` whose objective is within
``1e-6 * max(1, |f_LR|)`` of ``f_LR`` (read from a long fit's
``loss_curve_``, checked with the common objective), and fits with
``max_iter=k`` are timed. The ratio of the two is the speed-up; sksoftmax's
own default fit (``tol=1e-4``) is reported beside it, as is its first fit
(Numba's compilation or cache load).

Every timed fit runs under cProfile, whose split of the time is the
breakdown: the loss-and-gradient passes, the quasi-Newton update (the L-BFGS
routine's own time: scipy's L-BFGS-B for LR and for small sksoftmax models,
``sksoftmax._lbfgs`` from 2**15 parameters), and the rest (validation,
copies, the CSC copy of sparse input). Timed fits: the median of
``--repeats``, or one fit when a fit takes longer than ``--long`` seconds
(recorded as ``timed_runs``).

    python -m benchmarks.targets --out docs/benchmark_results/targets
    python -m benchmarks.targets --only text-flat_n200000,features --repeats 3

Sets (``--list``): flat and Zipf vocabularies in float32 and float64 at
200k x 100k x 20 and 1M x 200k x 20; dense 50k x 3072, K = 100 (shaped like
CIFAR-100 features); embedding-shaped 50k x 768, K = 100 (correlated,
L2-normalised rows); K = d = 1000; the dense 200k x 100 x 10 headline.
"""

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import re
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks import datasets
from benchmarks.objective import objective
from benchmarks.peers import LogReg, SkSoftmax
from benchmarks.run import LONG_S, environment

# the targets: speed-up over LR to its objective, per data set family
TARGETS = {"text": 3.0, "cifar": 3.0, "headline": 5.0, "wide": None,
           "embeddings": 4.0}
RELATIVE_GAP = 1e-6


def sets():
    """(family, data set description) of every set, in run order."""
    out = []
    for n, d in ((200_000, 100_000), (1_000_000, 200_000)):
        for vocabulary in ("flat", "zipf"):
            for dtype in ("float32", "float64"):
                out.append(("text", datasets.sparse_text(n, d, 20, dtype=dtype,
                                                         vocabulary=vocabulary)))
    out.append(("cifar", datasets.dense_features(50_000, 3072, 100, "float32")))
    out.append(("embeddings", datasets.embeddings(50_000, 768, 100)))
    out.append(("wide", datasets.dense_features(10_000, 1000, 1000, "float32")))
    out.append(("headline", datasets.blobs(200_000, 100, 10, "float32")))
    return out


# (file fragment, function) whose cumulative time is each part of a fit
PASS_FUNCTIONS = [("sksoftmax/_objective.py", "loss_gradient"),
                  ("sklearn/linear_model/_linear_loss.py", "loss_gradient")]
SOLVER_FUNCTIONS = [("sksoftmax/_solvers.py", "lbfgs"),
                    ("scipy/optimize/_lbfgsb_py.py", "_minimize_lbfgsb")]
SETUP_FUNCTIONS = [("sksoftmax/_kernels.py", "__init__")]  # TransposedCSR


def _cumulative(stats, functions, outermost=False):
    """Cumulative seconds and calls of the functions; with ``outermost`` the
    largest one alone (sksoftmax's ``lbfgs`` calls scipy's below 2**15
    parameters)."""
    total, calls = 0.0, 0
    for (file, _, func), (_, n_calls, _, cumtime, _) in stats.stats.items():
        for part, name in functions:
            if part in file and func == name:
                if outermost:
                    total, calls = max(total, cumtime), max(calls, n_calls)
                else:
                    total += cumtime
                    calls += n_calls
    return total, calls


def profiled_fit(model, X, y):
    """Fit under cProfile: wall time and its split into pass / update / rest."""
    profiler = cProfile.Profile()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        profiler.enable()
        model.fit(X, y)
        profiler.disable()
        total = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    pass_s, evaluations = _cumulative(stats, PASS_FUNCTIONS)
    solver_s, _ = _cumulative(stats, SOLVER_FUNCTIONS, outermost=True)
    setup_s, _ = _cumulative(stats, SETUP_FUNCTIONS)
    return {"fit_s": total, "pass_s": pass_s - setup_s, "evaluations": evaluations,
            "update_s": solver_s - pass_s, "setup_s": setup_s,
            "rest_s": total - solver_s,
            "warnings": sorted({type(w.message).__name__ for w in caught})}


def timed(make, X, y, repeats, long_s):
    """Median of ``repeats`` profiled fits (one when a fit exceeds ``long_s``).

    Returns the record of the median fit, ``fit_times_s`` and the last model.
    """
    runs, model = [], None
    for _ in range(repeats):
        model = make()
        runs.append(profiled_fit(model, X, y))
        if runs[-1]["fit_s"] > long_s:
            break
    times = [r["fit_s"] for r in runs]
    median = sorted(runs, key=lambda r: r["fit_s"])[(len(runs) - 1) // 2]
    return dict(median, fit_s=float(np.median(times)), fit_times_s=times,
                timed_runs=len(runs)), model


def stamped_fit(model, X, y):
    """``profiled_fit`` of a verbose model, and its per-iteration timestamps."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run = profiled_fit(model, X, y)
    stamps = [float(t) for t in re.findall(r"time = ([\d.]+)s", out.getvalue())]
    return run, stamps


def score(model, X, codes, alpha):
    return objective(model.coef_, model.intercept_, X, codes, alpha)


def iterations_to(model_curve, target):
    """First 1-based iteration whose objective is at most ``target``, or None."""
    for k, f in enumerate(model_curve, start=1):
        if f <= target:
            return k
    return None


def run_set(family, spec, C, repeats, long_s):
    t0 = time.perf_counter()
    X, _, y, _ = datasets.load(spec)
    generated_s = time.perf_counter() - t0
    n = len(y)
    alpha = 1.0 / (C * n)
    codes = np.searchsorted(np.unique(y), y)
    row = {"family": family, "dataset": spec["name"], "spec": spec, "C": C,
           "alpha": alpha, "n_train": n, "n_features": X.shape[1],
           "n_classes": int(codes.max() + 1), "input_bytes": datasets.nbytes(X),
           "generated_s": generated_s, "target": TARGETS[family]}
    lr = LogReg("lbfgs")
    # scipy's L-BFGS-B slows down when BLAS threads its small vector work:
    # LR is timed at default BLAS threads and at one, the faster counts
    lr_runs = {}
    for label, threads in (("default threads", None), ("1 BLAS thread", 1)):
        with threadpool_limits(threads, user_api="blas"):
            lr_runs[label] = timed(lambda: lr.make(alpha, n), X, y, repeats, long_s)
    faster = min(lr_runs, key=lambda label: lr_runs[label][0]["fit_s"])
    lr_run, lr_model = lr_runs[faster]
    f_lr = score(lr_model, X, codes, alpha)
    row["lr"] = dict(lr_run, n_iter=lr.n_iter(lr_model), objective=f_lr,
                     blas=faster, fit_s_by_blas={label: run["fit_s"] for label, (
                         run, _) in lr_runs.items()})
    print(f"{spec['name']}: LR {lr_run['fit_s']:.2f}s ({faster}), "
          f"{row['lr']['n_iter']} iterations, objective {f_lr:.9f}", flush=True)
    del lr_model
    lr_runs.clear()  # the models: memory for the next fits

    ours = SkSoftmax("lbfgs")
    model = ours.make(alpha, n)
    first = profiled_fit(model, X, y)  # pays Numba's compilation or cache load
    if first["fit_s"] > long_s:
        default_run = dict(first, fit_times_s=[first["fit_s"]], timed_runs=1)
    else:
        default_run, model = timed(lambda: ours.make(alpha, n), X, y, repeats, long_s)
    row["ours_default"] = dict(default_run, first_fit_s=first["fit_s"],
                               n_iter=int(model.n_iter_),
                               objective=score(model, X, codes, alpha))
    target = f_lr + RELATIVE_GAP * max(1.0, abs(f_lr))
    k = iterations_to(model.loss_curve_, target)
    reached = None
    if k is None:
        # the default tol stops short of LR's objective: run on to find k
        model = ours.make(alpha, n, max_iter=5000).set_params(tol=1e-10, verbose=1)
        long_run, stamps = stamped_fit(model, X, y)
        k = iterations_to(model.loss_curve_, target)
        row["long_fit_iterations"] = int(model.n_iter_)
        if k is not None and default_run["fit_s"] > long_s:
            # too long to fit again: the time to iteration k is read from this
            # fit's own per-iteration timestamps (its breakdown covers the
            # whole longer fit)
            reached = dict(long_run, n_iter=k,
                           objective=float(model.loss_curve_[k - 1]),
                           fit_s=long_run["fit_s"] - (stamps[-1] - stamps[k - 1]),
                           fit_times_s=None, timed_runs=1, method="timestamps",
                           profiled_iterations=int(model.n_iter_))
    del model
    while k is not None and reached is None and k <= 5000:
        run, model = timed(lambda k=k: ours.make(alpha, n, max_iter=k), X, y,
                           repeats, long_s)
        f_k = score(model, X, codes, alpha)
        if f_k <= target:
            reached = dict(run, n_iter=k, objective=f_k, method="refit")
        else:  # the loss curve is kernel-precision; the common objective decides
            k += 1
    row["ours_to_target"] = reached
    row["speedup"] = None if reached is None else lr_run["fit_s"] / reached["fit_s"]
    row["default_speedup"] = lr_run["fit_s"] / default_run["fit_s"]
    if reached is None:
        print(f"{spec['name']}: sksoftmax did not reach LR's objective", flush=True)
    else:
        print(f"{spec['name']}: sksoftmax {reached['fit_s']:.2f}s to LR's objective "
              f"({k} iterations), x{row['speedup']:.2f}; default fit "
              f"{default_run['fit_s']:.2f}s (x{row['default_speedup']:.2f})",
              flush=True)
    return row


def write_markdown(rows, environment_, path):
    lines = [
        "# Time to LogisticRegression's objective",
        "",
        f"`python -m benchmarks.targets` on {environment_['cpu_count']} CPUs, "
        f"{environment_['date']}; numpy {environment_['numpy']}, scipy "
        f"{environment_['scipy']}, scikit-learn {environment_['scikit-learn']}, "
        f"numba {environment_['numba']}.",
        "",
        "LR = `LogisticRegression(lbfgs)` at its defaults (C as given, tol=1e-4, "
        "max_iter=1000), timed at default BLAS threads and with BLAS held to "
        "one thread (scipy's L-BFGS-B slows down when BLAS threads its small "
        "vector work); the faster setting counts and is named. "
        "'to LR' = sksoftmax(lbfgs) with max_iter = the first "
        f"iteration count at which its objective is within {RELATIVE_GAP:g} "
        "(relative) of LR's. Times are medians of the timed runs shown "
        "(one run when a fit is long); 'first fit' includes Numba's compilation "
        "or cache load. * = a long set: the time to that iteration is read from "
        "the per-iteration timestamps (verbose) of one longer fit, not refitted, "
        "and k from its loss curve (the kernels' own objective, float32 logits "
        "for float32 data).",
        "",
        "| data set | C | LR s (runs) | LR iter | sksoftmax to LR s (iter) | "
        "speed-up | target | sksoftmax default s (iter) | default speed-up | "
        "objective gap of default | first fit s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lr, ours, default = r["lr"], r["ours_to_target"], r["ours_default"]
        target = r["target"]
        if ours is None:
            to_lr, speedup, verdict = "not reached", "-", "missed"
        else:
            stamp = "*" if ours.get("method") == "timestamps" else ""
            to_lr = f"{ours['fit_s']:.2f}{stamp} ({ours['n_iter']})"
            speedup = f"{r['speedup']:.2f}x"
            verdict = ("-" if target is None else
                       ("met" if r["speedup"] >= target else "missed"))
        target_text = "-" if target is None else f">= {target:g}x ({verdict})"
        gap = (default["objective"] - lr["objective"]) / max(1.0, abs(lr["objective"]))
        lines.append(
            f"| {r['dataset']} | {r['C']:g} | {lr['fit_s']:.2f} ({lr['timed_runs']}, "
            f"{lr.get('blas', 'default threads')}) | "
            f"{lr['n_iter']} | {to_lr} | {speedup} | {target_text} | "
            f"{default['fit_s']:.2f} ({default['n_iter']}) | "
            f"{r['default_speedup']:.2f}x | {gap:+.1e} | "
            f"{default['first_fit_s']:.2f} |")
    lines += [
        "",
        "## Breakdown of the timed fits",
        "",
        "pass = loss-and-gradient evaluations; update = the L-BFGS routine's own "
        "time (line search bookkeeping and the quasi-Newton update; scipy's "
        "L-BFGS-B, or `sksoftmax._lbfgs` from 2**15 parameters); setup = the CSC "
        "copy of sparse input; rest = validation, copies and everything else.",
        "",
        "| data set | model | fit s | evaluations | pass s (ms each) | "
        "update s (ms per iteration) | setup s | rest s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        for label, run in (("LR", r["lr"]), ("sksoftmax to LR", r["ours_to_target"]),
                           ("sksoftmax default", r["ours_default"])):
            if run is None:
                continue
            iterations = run.get("profiled_iterations", run["n_iter"])
            if run.get("method") == "timestamps":
                label += f" (read in a {iterations}-iteration fit)"
            lines.append(
                f"| {r['dataset']} | {label} | {run['fit_s']:.2f} | "
                f"{run['evaluations']} | {run['pass_s']:.2f} "
                f"({1e3 * run['pass_s'] / max(run['evaluations'], 1):.1f}) | "
                f"{run['update_s']:.2f} "
                f"({1e3 * run['update_s'] / max(iterations, 1):.1f}) | "
                f"{run['setup_s']:.2f} | {run['rest_s']:.2f} |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def quotes(record):
    """Figures the docs quote, by ``<data set>.<what>`` (the set's recorded
    name): ``speedup`` (to LogisticRegression's objective), ``lr_s``,
    ``lr_iter``, ``lr_setting``, ``ours_s``, ``ours_iter``,
    ``default_speedup``; and ``<family>.speedup`` ranges (flat, zipf:
    the CSR sets of that vocabulary)."""
    out, families = {}, {}
    for r in record["rows"]:
        name, lr, ours = r["dataset"], r["lr"], r["ours_to_target"]
        out.update({f"{name}.speedup": f"{r['speedup']:.1f}×",
                    f"{name}.lr_s": f"{lr['fit_s']:.2f} s",
                    f"{name}.lr_iter": str(lr["n_iter"]),
                    f"{name}.lr_setting": lr.get("blas", "default threads"),
                    f"{name}.ours_s": f"{ours['fit_s']:.2f} s",
                    f"{name}.ours_iter": str(ours["n_iter"]),
                    f"{name}.default_speedup": f"{r['default_speedup']:.1f}×"})
        for who, rec in (("lr", lr), ("ours", ours)):
            out[f"{name}.{who}_pass_ms"] = (
                f"{1e3 * rec['pass_s'] / rec['evaluations']:.0f} ms")
            out[f"{name}.{who}_update_ms"] = (
                f"{1e3 * rec['update_s'] / max(rec['n_iter'], 1):.0f} ms")
        family = name.split("_")[0].removeprefix("text-")
        families.setdefault(family, []).append(r["speedup"])
    for family, values in families.items():
        out[f"{family}.speedup"] = f"{min(values):.1f}–{max(values):.1f}×"
    return out


def tables(record):
    """Tables the docs show: ``{name: (header, rows)}``."""
    from benchmarks.datasets import describe

    rows = []
    for r in record["rows"]:
        lr, ours = r["lr"], r["ours_to_target"]
        target = r.get("target")
        met = ("-" if not target else
               f"≥ {target:g}× ({'met' if r['speedup'] >= target else 'missed'})")
        rows.append([describe(r["dataset"]),
                     f"{lr['fit_s']:.2f} ({lr.get('blas', 'default threads')})",
                     str(lr["n_iter"]), f"{ours['fit_s']:.2f} ({ours['n_iter']})",
                     f"{r['speedup']:.2f}×", met])
    return {"summary": (["data set", "LR s (setting)", "LR iter",
                         "sksoftmax s (iter)", "speed-up", "target"], rows)}


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.plots import readable_log_ticks

    done = [r for r in rows if r["speedup"] is not None]
    if not done:
        return
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(done) + 1.5))
    names = [r["dataset"] for r in done]
    ax.barh(names, [r["speedup"] for r in done], color="tab:blue",
            label="to LR's objective")
    ax.scatter([r["default_speedup"] for r in done], names, color="black",
               marker="|", s=200, label="default fit", zorder=3)
    for i, r in enumerate(done):
        if r["target"] is not None:
            ax.plot([r["target"]] * 2, [i - 0.4, i + 0.4], color="tab:red")
    ax.axvline(1.0, color="gray", lw=0.8)
    ax.plot([], [], color="tab:red", label="target")
    ax.set(xlabel="speed-up over LogisticRegression(lbfgs)",
           title="sksoftmax(lbfgs): time to LR's objective")
    ax.invert_yaxis()
    ax.legend(fontsize=8)
    fig.tight_layout()
    for each in [ax]:
        readable_log_ticks(each)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/targets")
    parser.add_argument("--only", default=None,
                        help="comma-separated texts: sets whose name contains one")
    parser.add_argument("--C", type=float, default=1.0,
                        help="LogisticRegression's C (alpha = 1 / (C n)); default "
                             "LR's own default, as a new user runs it")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long", type=float, default=LONG_S,
                        help="a fit longer than this many seconds is timed once")
    parser.add_argument("--append", action="store_true",
                        help="add to (replace by name in) an existing targets.json")
    parser.add_argument("--list", action="store_true", help="print the sets and stop")
    args = parser.parse_args(argv)
    chosen = [(family, spec) for family, spec in sets()
              if args.only is None
              or any(text in spec["name"] for text in args.only.split(","))]
    if args.list:
        for family, spec in chosen:
            print(family, spec["name"])
        return
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "targets.json")
    results = {"environment": environment(), "rows": []}
    if args.append and os.path.exists(path):
        known = {spec["name"] for _, spec in sets()}
        with open(path) as f:
            results["rows"] = [r for r in json.load(f)["rows"]
                               if r["dataset"] in known]
    np.seterr(all="ignore")
    for family, spec in chosen:
        row = run_set(family, spec, args.C, args.repeats, args.long)
        results["rows"] = [r for r in results["rows"]
                           if r["dataset"] != row["dataset"]] + [row]
        order = [s["name"] for _, s in sets()]
        results["rows"].sort(key=lambda r: order.index(r["dataset"]))
        with open(path, "w") as f:
            json.dump(results, f, indent=1)
        write_markdown(results["rows"], results["environment"],
                       os.path.join(args.out, "targets.md"))
        plot(results["rows"], os.path.join(args.out, "speedup_to_lr_objective.png"))
    print(f"wrote {args.out}/targets.json, targets.md, speedup_to_lr_objective.png")


if __name__ == "__main__":
    main()
