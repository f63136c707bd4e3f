"""The stochastic solvers at their defaults: objective gap, accuracy, fit time.

For each data set, at ``C = 1`` (``alpha = 1 / n``, what a user of
``LogisticRegression``'s defaults gets):

- the optimum: sksoftmax's ``lbfgs`` at ``tol=1e-8`` (untimed), whose
  training objective ``f*`` every default fit's *gap* ``(f - f*) / f*`` is
  taken against (the common objective of ``benchmarks.objective``, float64),
  and whose test log-loss every test log-loss is compared with;
- ``LogisticRegression(lbfgs)`` sets the reference time: timed at default
  BLAS threads and under ``threadpool_limits(1)``, the faster of the two
  (scipy's L-BFGS-B slows down here when BLAS threads its small vector work);
- sksoftmax's ``lbfgs``, ``sgd`` and ``adam`` and ``MLPClassifier(
  hidden_layer_sizes=())`` (softmax regression by Adam or SGD, the same
  objective) are fitted at their defaults (timed: median of ``--repeats``,
  one fit above ``--long`` s), and the minibatch ones get a time-to-accuracy
  curve: fits with ``max_iter`` = 1, 2, 3, 4, 6, 8, 12, ... , each timed
  whole (setup included), until a fit stops by itself or passes ``--cap``
  seconds (``--no-curves`` skips them). A curve's first point at or above the
  target accuracy (LR's minus 0.3 points on dense sets, 0.5 on sparse) is
  the time to accuracy.

Slow peers are never dropped: a fit longer than ``--cap`` seconds ends the
curve, and a peer's default fit that would run above it runs with
``max_iter`` set from one epoch's time so that it stops near the cap (said
in the table). sksoftmax's fits run uncapped: after the first epoch their
iterations are full passes or SVRG epochs, which one epoch's time does not
bound.
The sklearn sets also get the streaming check: ``partial_fit`` over 10
chunks for 5 passes on digits, beside ``SGDClassifier``'s ``partial_fit``.

    python -m benchmarks.stochastic --out docs/benchmark_results/stochastic
    python -m benchmarks.stochastic --only iris,digits --repeats 3
"""

import argparse
import json
import os
import time
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import accuracy_score, log_loss
from threadpoolctl import threadpool_limits

from benchmarks import datasets
from benchmarks.objective import objective
from benchmarks.peers import MLP
from benchmarks.run import environment, median_time
from sksoftmax import SoftmaxRegressionClassifier

EPOCHS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)


def sets():
    sk = [datasets.sklearn_set(n) for n in datasets.SKLEARN_SETS]
    return sk + [
        datasets.blobs(200_000, 100, 10, "float32"),  # the headline
        datasets.blobs(200_000, 100, 10, "float64"),
        datasets.blobs(100_000, 20, 2, "float32"),
        datasets.blobs(50_000, 1000, 10, "float32"),
        datasets.blobs(100_000, 100, 100, "float32"),
        datasets.embeddings(50_000, 768, 100),
        datasets.sparse_text(200_000, 100_000, 20),
        datasets.sparse_text(200_000, 100_000, 20, vocabulary="flat"),
        datasets.sparse_text(200_000, 100_000, 20, vocabulary="zipf"),
    ]


class Model:
    """A named way to build an estimator at a given ``max_iter`` (None:
    default), and to read its linear parameters back."""

    def __init__(self, name, make, linear_params=None, curve=True, capped=True):
        self.name, self.make, self.curve, self.capped = name, make, curve, capped
        self.linear_params = linear_params or (lambda m: (m.coef_, m.intercept_))


def models(alpha, n_train):
    sk = [Model(f"sksoftmax({s})",
                lambda m, s=s: SoftmaxRegressionClassifier(
                    solver=s, alpha=alpha, random_state=0,
                    **({} if m is None else {"max_iter": m})),
                # to tol: a fit's iterations after the first epoch are passes
                # or SVRG epochs, so one epoch's time does not bound them
                curve=s != "lbfgs", capped=False)
          for s in ("lbfgs", "sgd", "adam")]
    mlp = [Model(f"MLPClassifier({s})",
                 lambda m, s=s: MLP(s).make(alpha, n_train, max_iter=m),
                 MLP(s).linear_params)
           for s in ("adam", "sgd")]
    return sk + mlp


def fit_timed(model, X, y, blas_threads=None):
    with warnings.catch_warnings(), threadpool_limits(blas_threads, user_api="blas"):
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        model.fit(X, y)
        return time.perf_counter() - start


def scores(model, linear_params, X, codes, X_test, y_test, alpha, optimum):
    """Training objective and its gap to ``optimum``, test accuracy and
    log-loss (and its ratio to the optimum's)."""
    coef, intercept = linear_params(model)
    value = objective(coef, intercept, X, codes, alpha)
    record = {"objective": value,
              "test_accuracy": float(accuracy_score(y_test, model.predict(X_test))),
              "test_log_loss": float(log_loss(y_test, model.predict_proba(X_test),
                                              labels=model.classes_))}
    if optimum is not None:
        record["objective_gap"] = (value - optimum["objective"]) / optimum["objective"]
        record["log_loss_ratio"] = record["test_log_loss"] / optimum["test_log_loss"]
    return record


def logistic_regression(X, y, repeats, long_s):
    """LogisticRegression(lbfgs) at its defaults, timed at default BLAS
    threads and with BLAS held to one thread: the faster is its time."""
    record = {}
    for label, threads in (("default_threads", None), ("one_blas_thread", 1)):
        times = []
        for _ in range(repeats):
            lr = LogisticRegression(C=1.0)
            times.append(fit_timed(lr, X, y, threads))
            if times[-1] > long_s:
                break
        record[label] = {"fit_s": float(np.median(times)), "fit_times_s": times}
    best = min(record, key=lambda k: record[k]["fit_s"])
    record.update(fit_s=record[best]["fit_s"], faster=best)
    return lr, record


def n_epochs(model):
    return int(np.max(model.n_iter_))


def default_fit(model, X, y, X_test, y_test, repeats, long_s, cap_s, codes, alpha,
                optimum):
    """The default fit: median time, epochs, objective gap, test accuracy and
    log-loss; capped if slow."""
    record = {}
    max_iter = None
    if model.capped:
        one_epoch = fit_timed(model.make(1), X, y)
        # a default fit that could run past the cap runs with max_iter capped
        max_iter = max(1, int(cap_s / max(one_epoch, 1e-9)))
        if max_iter < model.make(None).max_iter:
            record["capped_max_iter"] = max_iter
        else:
            max_iter = None
    times = []
    for _ in range(repeats):
        fitted = model.make(max_iter)
        times.append(fit_timed(fitted, X, y))
        if times[-1] > long_s:
            break
    record.update(fit_s=float(np.median(times)), fit_times_s=times,
                  epochs=n_epochs(fitted),
                  **scores(fitted, model.linear_params, X, codes, X_test, y_test,
                           alpha, optimum))
    if max_iter is not None:
        record["cap_reached"] = record["epochs"] >= max_iter
        if not record["cap_reached"]:  # the cap changed nothing
            del record["capped_max_iter"]
    return record


def curve(model, X, y, X_test, y_test, cap_s):
    """Test accuracy against wall time, one whole fit per point."""
    points = []
    for epochs in EPOCHS:
        fitted = model.make(epochs)
        elapsed = fit_timed(fitted, X, y)
        points.append({"max_iter": epochs, "epochs": n_epochs(fitted),
                       "time_s": elapsed,
                       "test_accuracy": float(accuracy_score(y_test,
                                                             fitted.predict(X_test)))})
        if n_epochs(fitted) < epochs or elapsed > cap_s:
            break
    return points


def time_to(points, target):
    for p in points:
        if p["test_accuracy"] >= target:
            return p["time_s"]
    return None


def streaming(X, y, X_test, y_test, alpha, passes=5, n_chunks=10):
    """``partial_fit`` over ``n_chunks`` chunks, ``passes`` times: test accuracy."""
    classes = np.unique(y)
    chunks = np.array_split(np.random.default_rng(0).permutation(len(y)), n_chunks)
    out = {}
    makers = {f"sksoftmax({s})": lambda s=s: SoftmaxRegressionClassifier(
                  solver=s, alpha=alpha, random_state=0) for s in ("sgd", "adam")}
    makers["SGDClassifier(log_loss)"] = lambda: SGDClassifier(
        loss="log_loss", alpha=alpha, random_state=0)
    for name, make in makers.items():
        model = make()
        start = time.perf_counter()
        for _ in range(passes):
            for rows in chunks:
                model.partial_fit(X[rows], y[rows], classes=classes)
        out[name] = {"time_s": time.perf_counter() - start,
                     "test_accuracy": float(accuracy_score(y_test,
                                                           model.predict(X_test)))}
    return out


def epoch_and_pass(X, y, alpha, repeats=7):
    """Median time of one default sgd epoch (shuffled) and of one full
    loss-and-gradient pass, serial and on every core (what lbfgs runs)."""
    from sksoftmax._objective import SoftmaxObjective
    from sksoftmax._parallel import effective_n_threads
    from sksoftmax._solvers import MinibatchSettings

    codes = np.unique(y, return_inverse=True)[1].astype(np.intp)
    weights = np.ones(len(y))
    k = int(codes.max()) + 1
    settings = MinibatchSettings.from_params(
        SoftmaxRegressionClassifier(solver="sgd", alpha=alpha).get_params())
    serial = SoftmaxObjective(X, codes, weights, k, alpha=alpha, center=True)
    params = serial.init_params()
    batch_size = settings.batch_size_for(len(y))
    rule = settings.rule(serial.step_constants(params, None, "sgd"), batch_size,
                         len(y))
    state = rule.init_state(params.copy())
    rng = np.random.default_rng(0)

    epoch_s = median_time(lambda: serial.minibatch_epoch(
        state, rng.permutation(len(y)).astype(np.intp), batch_size, rule), repeats)
    params = serial.init_params()
    pass_s = median_time(lambda: serial.loss_gradient(params), repeats)
    threaded = SoftmaxObjective(X, codes, weights, k, alpha=alpha,
                                n_threads=effective_n_threads(None))
    with threaded.parallel():
        threaded_pass_s = median_time(lambda: threaded.loss_gradient(params), repeats)
    return {"epoch_s": epoch_s, "pass_s": pass_s, "threaded_pass_s": threaded_pass_s}


def run_set(spec, repeats, long_s, cap_s, curves=True):
    X, X_test, y, y_test = datasets.load(spec)
    n = len(y)
    alpha = 1.0 / n
    codes = np.searchsorted(np.unique(y), y)
    sparse = spec["kind"] == "sparse_text"
    row = {"dataset": spec["name"], "n_train": n, "n_features": X.shape[1],
           "n_classes": int(len(np.unique(y))), "alpha": alpha, "C": 1.0,
           "sparse": sparse, "tolerance_points": 0.5 if sparse else 0.3,
           "repeats": repeats, "cap_s": cap_s}
    # warm-up: Numba's compilation (or cache load) is not fit time
    for solver in ("lbfgs", "sgd", "adam"):
        fit_timed(SoftmaxRegressionClassifier(solver=solver, max_iter=2),
                  X[:min(n, 500)], y[:min(n, 500)])
    exact = SoftmaxRegressionClassifier(alpha=alpha, tol=1e-8, max_iter=10_000)
    fit_timed(exact, X, y)
    row["optimum"] = {"tol": 1e-8, "n_iter": int(exact.n_iter_),
                      **scores(exact, Model("", None).linear_params, X, codes,
                               X_test, y_test, alpha, None)}
    lr, row["LogisticRegression(lbfgs)"] = logistic_regression(X, y, repeats, long_s)
    row["LogisticRegression(lbfgs)"].update(
        scores(lr, lambda m: (m.coef_, m.intercept_), X, codes, X_test, y_test,
               alpha, row["optimum"]))
    target = (row["LogisticRegression(lbfgs)"]["test_accuracy"]
              - row["tolerance_points"] / 100)
    row["target_accuracy"] = target
    for model in models(alpha, n):
        record = default_fit(model, X, y, X_test, y_test, repeats, long_s, cap_s,
                             codes, alpha, row["optimum"])
        if curves and model.curve:
            record["curve"] = curve(model, X, y, X_test, y_test, cap_s)
            record["time_to_target_s"] = time_to(record["curve"], target)
        row[model.name] = record
    if spec["name"] == "digits":
        row["streaming"] = streaming(X, y, X_test, y_test, alpha)
    if n >= 10_000:
        row["epoch_and_pass"] = epoch_and_pass(X, y, alpha)
    return row


PEERS = ("sksoftmax(lbfgs)", "sksoftmax(sgd)", "sksoftmax(adam)",
         "MLPClassifier(adam)", "MLPClassifier(sgd)")


def _percent(x):
    return "-" if x is None else f"{100 * x:+.3g}%"


def write_markdown(rows, environment_, path):
    lines = ["# Stochastic solvers at their defaults", "",
             "`python -m benchmarks.stochastic`; C = 1 (alpha = 1/n). "
             f"Machine: {environment_.get('cpu_count')} cores. *gap*: training "
             "objective over the optimum's (sksoftmax lbfgs, tol=1e-8), minus 1; "
             "*log-loss*: test log-loss over the optimum's. LR: "
             "LogisticRegression(lbfgs) at its defaults, the faster of default BLAS "
             "threads and one BLAS thread; *LR / model*: LR's fit time over the "
             "model's (medians). *To target*: the first whole fit (max_iter = 1, 2, "
             "3, 4, 6, 8, ... ) whose test accuracy reaches LR's minus 0.3 points "
             "(dense) or 0.5 (sparse); '-' where the curves were not run "
             "(`--no-curves`).", "",
             "| data set | LR: s, acc, gap | model | gap | log-loss | test acc "
             "| n_iter | fit s | LR / model | to target, s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for row in rows:
        lr = row["LogisticRegression(lbfgs)"]
        for i, name in enumerate(PEERS):
            rec = row.get(name)
            if rec is None:
                continue
            threads = ("1 BLAS thread" if lr.get("faster") == "one_blas_thread"
                       else "default threads")
            head = (f"{row['dataset']} | {lr['fit_s']:.3g} ({threads}), "
                    f"{lr['test_accuracy']:.4f}, {_percent(lr.get('objective_gap'))}"
                    if i == 0 else " | ")
            capped = (f" (capped at {rec['capped_max_iter']})"
                      if rec.get("cap_reached") else "")
            to = rec.get("time_to_target_s")
            to_text = ("-" if "curve" not in rec
                       else "not reached" if to is None else f"{to:.3g}")
            ratio = rec.get("log_loss_ratio")
            lines.append(
                f"| {head} | {name} | {_percent(rec.get('objective_gap'))} | "
                f"{'-' if ratio is None else f'{ratio:.4f}'} | "
                f"{rec['test_accuracy']:.4f} | {rec['epochs']}{capped} | "
                f"{rec['fit_s']:.3g} | {lr['fit_s'] / rec['fit_s']:.2f}x | {to_text} |")
        if "epoch_and_pass" in row:
            e = row["epoch_and_pass"]
            notes.append(f"- {row['dataset']}: one sgd epoch {e['epoch_s']:.3g} s = "
                         f"{e['epoch_s'] / e['pass_s']:.2f} serial passes "
                         f"({e['pass_s']:.3g} s), "
                         f"{e['epoch_s'] / e['threaded_pass_s']:.2f} threaded passes "
                         f"({e['threaded_pass_s']:.3g} s).")
        if "streaming" in row:
            notes.append("- Streaming digits (`partial_fit`, 10 chunks x 5 passes): "
                         + "; ".join(f"{k} {v['test_accuracy']:.4f}"
                                     for k, v in row["streaming"].items())
                         + f"; lbfgs {row['sksoftmax(lbfgs)']['test_accuracy']:.4f}.")
    lines += ["", *notes]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _readable_percent(x):
    """A gap in percent for a reader: two significant digits, or "< 0.001 %"."""
    return "< 0.001 %" if 100 * x < 1e-3 else f"{100 * x:.2g} %"


def _times(ratio):
    return f"{ratio:.1f}×" if ratio >= 1 else f"{ratio:.2f}×"


def quotes(record):
    """Figures the docs quote: ``<data set>.<model>.gap`` (percent above the
    optimum), ``.ratio`` (LogisticRegression's time over the model's) for
    model in lbfgs, sgd, adam, LR; ``<data set>.LR.s``; and over the
    sksoftmax fits of every set but ``blobs_n50000_d1000_k10_float32`` (whose
    tol is not a 1 % rule): ``max_gap`` and ``max_log_loss``; the streaming
    accuracies ``streaming.<sgd|adam|lbfgs>``."""
    out = {}
    gaps, losses = [], []
    for row in record["rows"]:
        name, lr = row["dataset"], row["LogisticRegression(lbfgs)"]
        out[f"{name}.LR.s"] = f"{lr['fit_s']:.3g} s"
        out[f"{name}.LR.gap"] = _readable_percent(lr["objective_gap"])
        for solver in ("lbfgs", "sgd", "adam"):
            rec = row.get(f"sksoftmax({solver})")
            if rec is None:
                continue
            out[f"{name}.{solver}.gap"] = _readable_percent(rec["objective_gap"])
            out[f"{name}.{solver}.ratio"] = _times(lr["fit_s"] / rec["fit_s"])
            if name != "blobs_n50000_d1000_k10_float32":
                gaps.append(rec["objective_gap"])
                losses.append(rec["log_loss_ratio"] - 1)
        for peer, rec in row.get("streaming", {}).items():
            out[f"streaming.{peer}"] = f"{rec['test_accuracy']:.4f}"
        if "streaming" in row:
            out["streaming.lbfgs"] = f"{row['sksoftmax(lbfgs)']['test_accuracy']:.4f}"
    out["max_gap"] = f"{100 * max(gaps):.2g} %"
    out["max_log_loss"] = f"{100 * max(losses):.2g} %"
    return out


def tables(record):
    """Tables the docs show: ``{name: (header, rows)}``: the generated sets."""
    from benchmarks.datasets import describe

    rows = []
    for row in record["rows"]:
        if row["dataset"] in ("iris", "wine", "breast_cancer", "digits"):
            continue
        lr = row["LogisticRegression(lbfgs)"]
        cells = [describe(row["dataset"]), f"{lr['fit_s']:.3g}",
                 _readable_percent(lr["objective_gap"])]
        for solver in ("sgd", "adam", "lbfgs"):
            rec = row[f"sksoftmax({solver})"]
            cells.append(f"{_readable_percent(rec['objective_gap'])}, "
                         f"{_times(lr['fit_s'] / rec['fit_s'])}")
        rows.append(cells)
    return {"summary": (["data set", "LR s", "LR gap", "sgd: gap, × LR",
                         "adam: gap, × LR", "lbfgs: gap, × LR"], rows)}


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.plots import readable_log_ticks

    big = [r for r in rows if r["n_train"] >= 10_000
           and any("curve" in r[name] for name in PEERS if name in r)]
    if not big:
        return
    cols = 3
    fig, axes = plt.subplots((len(big) + cols - 1) // cols, cols,
                             figsize=(5 * cols, 3.6 * ((len(big) + cols - 1) // cols)),
                             squeeze=False)
    for ax, row in zip(axes.ravel(), big, strict=False):
        curved = [name for name in PEERS if "curve" in row.get(name, {})]
        for name in curved:
            pts = row[name]["curve"]
            ax.plot([p["time_s"] for p in pts], [p["test_accuracy"] for p in pts],
                    marker="o", ms=3, label=name)
        lr = row["LogisticRegression(lbfgs)"]
        ax.axhline(row["target_accuracy"], color="grey", ls=":", lw=1,
                   label="LR - tolerance")
        ax.axvline(lr["fit_s"], color="grey", ls="--", lw=1, label="LR fit time")
        ax.set(xscale="log", title=row["dataset"], xlabel="fit time, s",
               ylabel="test accuracy")
        lo = min(p["test_accuracy"] for name in curved for p in row[name]["curve"])
        ax.set_ylim(max(lo, row["target_accuracy"] - 0.1), None)
        ax.grid(True, alpha=0.3)
    for ax in axes.ravel()[len(big):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    fig.tight_layout()
    for each in axes.flat:
        readable_log_ticks(each)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stochastic",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks/results/stochastic")
    parser.add_argument("--only", default="",
                        help="comma-separated parts of data set names")
    parser.add_argument("--append", action="store_true",
                        help="add to the rows already in --out")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long", type=float, default=30.0)
    parser.add_argument("--cap", type=float, default=60.0)
    parser.add_argument("--no-curves", action="store_true",
                        help="skip the time-to-accuracy curves")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, "stochastic.json")
    rows = []
    if args.append and os.path.exists(json_path):
        with open(json_path) as f:
            rows = json.load(f)["rows"]
    wanted = [w for w in args.only.split(",") if w]
    env = environment()
    for spec in sets():
        if wanted and not any(w in spec["name"] for w in wanted):
            continue
        start = time.perf_counter()
        row = run_set(spec, args.repeats, args.long, args.cap,
                      curves=not args.no_curves)
        rows = [r for r in rows if r["dataset"] != row["dataset"]] + [row]
        print(f"{spec['name']}: {time.perf_counter() - start:.0f} s", flush=True)
        with open(json_path, "w") as f:
            json.dump({"environment": env, "rows": rows}, f, indent=1)
        write_markdown(rows, env, os.path.join(args.out, "stochastic.md"))
        plot(rows, os.path.join(args.out, "time_to_accuracy.png"))


if __name__ == "__main__":
    main()
