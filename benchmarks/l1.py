"""L1 and elastic net: sksoftmax's solvers against LogisticRegression(saga).

saga is scikit-learn's only multinomial solver for an L1 penalty. For each
data set and ``l1_ratio`` in {0.5, 1} this fits ``LogisticRegression(solver=
"saga")`` at ``tol=1e-6`` (the reference objective) and at its default
``tol=1e-4``, and sksoftmax's lbfgs (OWL-QN), sgd and adam at their defaults,
all with ``C = 1 / (alpha n)``. It reports the median fit time of
``--repeats`` fits after a warm-up (one fit for saga, whose runs are long
and steady; ``--saga-max-iter`` caps its epochs and the table says when a
cap was hit), iterations, the training objective's gap to saga's at
``tol=1e-6`` (``benchmarks/objective.py``, elastic net), the share of exact
zeros in ``coef_`` and the test accuracy.

Run from the repository root::

    python -m benchmarks.l1 [--repeats 3] [--only digits,...] [--out FILE.md]
"""

import argparse

import numpy as np
from sklearn.linear_model import LogisticRegression

from benchmarks import datasets
from benchmarks.objective import objective
from benchmarks.timing import median_fit, write_record
from sksoftmax import SoftmaxRegressionClassifier

# (name, spec, alpha): alpha chosen so that the L1 fits keep a minority of
# the coefficients (digits: the setting)
SETS = [
    ("digits", {"kind": "sklearn", "name": "digits"}, 1e-2),
    ("mnist1d-like 4000x40 K=10",
     datasets.dense_features(4000, 40, 10, dtype="float64"), 1e-2),
    ("text 20k x 20k K=20 (zipf)",
     datasets.sparse_text(20_000, 20_000, 20, dtype="float64", vocabulary="zipf"),
     2e-4),
]
L1_RATIOS = (0.5, 1.0)


def _compare(name, data, alpha, ratio, repeats, saga_max_iter):
    """The rows of one data set and ``l1_ratio``."""
    X, X_test, y, y_test = data
    n = X.shape[0]
    codes = np.searchsorted(np.unique(y), y)

    def value(model):
        return objective(model.coef_, model.intercept_, X, codes, alpha, ratio)

    def saga(tol):
        return LogisticRegression(solver="saga", l1_ratio=ratio, C=1.0 / (alpha * n),
                                  tol=tol, max_iter=saga_max_iter)

    def ours(solver):
        return SoftmaxRegressionClassifier(solver=solver, alpha=alpha,
                                           l1_ratio=ratio, random_state=0)

    fits = {"saga tol=1e-6": median_fit(lambda: saga(1e-6), X, y, 1, warm_up=False),
            "saga (default tol)": median_fit(lambda: saga(1e-4), X, y, 1,
                                             warm_up=False)}
    for solver in ("lbfgs", "sgd", "adam"):
        fits[solver] = median_fit(lambda s=solver: ours(s), X, y, repeats,
                                  warm_up=repeats > 1)
    reference = value(fits["saga tol=1e-6"][1])
    saga_s = fits["saga (default tol)"][0]
    rows = []
    for method, (seconds, model) in fits.items():
        n_iter = int(np.max(model.n_iter_))
        rows.append({
            "dataset": name, "l1_ratio": ratio, "alpha": alpha, "method": method,
            "seconds": seconds, "n_iter": n_iter,
            "capped": method.startswith("saga") and n_iter >= saga_max_iter,
            "gap": (value(model) - reference) / reference,
            "zeros": float(np.mean(model.coef_ == 0)),
            "accuracy": float(model.score(X_test, y_test)),
            "saga_over": saga_s / seconds})
    return rows


def run(repeats, only=None, saga_max_iter=10_000):
    rows = []
    for name, spec, alpha in SETS:
        if only and not any(o in name for o in only):
            continue
        data = datasets.load(spec)
        for ratio in L1_RATIOS:
            rows += _compare(name, data, alpha, ratio, repeats, saga_max_iter)
    return rows


def markdown(record):
    rows = record["rows"]
    repeats = record["settings"]["repeats"]
    saga_max_iter = record["settings"]["saga_max_iter"]
    lines = [
        "# L1 and elastic net against LogisticRegression(saga)",
        "",
        "`python -m benchmarks.l1`: C = 1/(alpha n). sksoftmax at its defaults "
        f"(tol=1e-4), median of {repeats} fits after a warm-up; saga one fit "
        f"(max_iter={saga_max_iter}; * when it was reached). Gap: training "
        "objective (elastic net) over saga's at tol=1e-6, minus 1. Zeros: share "
        "of exact zeros in coef_. Speed-up: saga at its default tol over the "
        "method's time.",
        "",
        "| data set | l1_ratio | alpha | method | s | iter | gap | zeros | "
        "test acc | speed-up vs saga |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['l1_ratio']:g} | {r['alpha']:g} | {r['method']} "
            f"| {r['seconds']:.3f} | {r['n_iter']}{'*' if r['capped'] else ''} | "
            f"{r['gap']:+.2e} | {100 * r['zeros']:.1f} % | {r['accuracy']:.4f} | "
            f"{r['saga_over']:.1f}x |")
    return "\n".join(lines) + "\n"


SHORT_NAMES = {"digits": "digits", "mnist1d-like 4000x40 K=10": "mnist1d",
               "text 20k x 20k K=20 (zipf)": "text"}


def _key(r):
    return f"{SHORT_NAMES.get(r['dataset'], r['dataset'])}.{r['l1_ratio']:g}"


def _range(values, fmt):
    low, high = fmt.format(min(values)), fmt.format(max(values))
    return low if low == high else f"{low}–{high}"


def quotes(record):
    """Figures the docs quote: ``<set>.<l1_ratio>.<method>.<what>`` (set:
    digits, mnist1d or text; method: lbfgs, sgd, adam, saga, saga6) and
    ``<set>.<what>`` ranges over both ratios."""
    out, by_set = {}, {}
    saga_names = {"saga (default tol)": "saga", "saga tol=1e-6": "saga6"}
    for r in record["rows"]:
        method = saga_names.get(r["method"], r["method"])
        key = f"{_key(r)}.{method}"
        out.update({f"{key}.s": f"{r['seconds']:.3g} s",
                    f"{key}.iter": str(r["n_iter"]),
                    f"{key}.gap": f"{r['gap']:+.1e}",
                    f"{key}.zeros": f"{100 * r['zeros']:.1f} %",
                    f"{key}.speedup": f"{r['saga_over']:.3g}×"})
        by_set.setdefault(_key(r).split(".")[0], []).append((method, r))
    for name, rows in by_set.items():
        lbfgs = [r for m, r in rows if m == "lbfgs"]
        saga6 = {r["l1_ratio"]: r for m, r in rows if m == "saga6"}
        out[f"{name}.lbfgs.speedup"] = _range([r["saga_over"] for r in lbfgs],
                                              "{:.3g}×")
        out[f"{name}.lbfgs.iter"] = _range([r["n_iter"] for r in lbfgs], "{}")
        out[f"{name}.lbfgs.gap"] = _range([r["gap"] for r in lbfgs], "{:.1e}")
        out[f"{name}.lbfgs.max_gap"] = f"{max(r['gap'] for r in lbfgs):.1e}"
        out[f"{name}.saga.iter"] = _range(
            [r["n_iter"] for m, r in rows if m == "saga"], "{}")
        apart = max(abs(r["zeros"] - saga6[r["l1_ratio"]]["zeros"]) for r in lbfgs)
        out[f"{name}.zeros_apart"] = f"{100 * apart:.1f}"
    return out


def tables(record):
    """Tables the docs show: ``{name: (header, rows)}``."""
    rows = [[r["dataset"], f"{r['l1_ratio']:g}", f"{r['alpha']:g}",
             f"{r['seconds']:.3g}, {r['n_iter']}", f"{r['gap']:+.1e}",
             f"{100 * r['zeros']:.1f} %", f"{r['saga_over']:.3g}×"]
            for r in record["rows"] if r["method"] == "lbfgs"]
    return {"lbfgs": (["data set", "l1_ratio", "alpha", "lbfgs s, iter",
                       "gap to saga tol=1e-6", "zeros", "speed-up vs saga"], rows)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=None,
                        help="comma-separated substrings of data set names")
    parser.add_argument("--saga-max-iter", type=int, default=10_000)
    parser.add_argument("--out", default=None, help="also write the table here")
    args = parser.parse_args(argv)
    only = args.only.split(",") if args.only else None
    write_record({"settings": {"repeats": args.repeats,
                               "saga_max_iter": args.saga_max_iter},
                  "rows": run(args.repeats, only, args.saga_max_iter)},
                 markdown, args.out)


if __name__ == "__main__":
    main()
