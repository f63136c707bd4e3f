"""lbfgs on the scikit-learn sets as they ship: features not standardised.

Many fits start from raw features (a pipeline without a scaler). For iris,
wine, breast_cancer and digits, unscaled, with ``alpha = 1/n`` (``C = 1``),
this times ``LogisticRegression(lbfgs)`` (at default BLAS threads and with
BLAS held to one thread, the faster counts; ``max_iter=10000``) and
sksoftmax's default lbfgs, and prints iterations, the median fit time of
``--repeats`` fits after a warm-up, and the training objective of each under
one definition (``benchmarks/objective.py``). The optimum column is
sksoftmax's fit at ``tol=1e-10``; the gaps are relative to it.

Run from the repository root::

    python -m benchmarks.unscaled [--repeats 5] [--out FILE.md]

``--out`` also writes the raw record beside the table (``FILE.json``).
"""

import argparse
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from benchmarks import datasets
from benchmarks.objective import objective
from benchmarks.timing import fastest_setting, median_fit, write_record
from sksoftmax import SoftmaxRegressionClassifier


def run(repeats):
    rows = []
    for name in datasets.SKLEARN_SETS:
        X, y = datasets.SKLEARN_SETS[name](return_X_y=True)
        n = len(y)
        alpha = 1.0 / n
        codes = np.searchsorted(np.unique(y), y)

        def value(model, X=X, codes=codes, alpha=alpha):
            return objective(model.coef_, model.intercept_, X, codes, alpha)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            optimum = value(SoftmaxRegressionClassifier(
                alpha=alpha, tol=1e-10, max_iter=100_000).fit(X, y))
        lr_s, lr_model, faster = fastest_setting(
            lambda: LogisticRegression(C=1.0, max_iter=10_000), X, y, repeats)
        ours_s, ours = median_fit(lambda a=alpha: SoftmaxRegressionClassifier(alpha=a),
                              X, y, repeats)
        rows.append({
            "dataset": name, "optimum": optimum, "lr_s": lr_s, "lr_blas": faster,
            "lr_iter": int(np.max(lr_model.n_iter_)),
            "lr_gap": (value(lr_model) - optimum) / optimum,
            "ours_s": ours_s, "ours_iter": int(ours.n_iter_),
            "ours_gap": (value(ours) - optimum) / optimum})
    return rows


def markdown(record):
    rows, repeats = record["rows"], record["settings"]["repeats"]
    lines = [
        "# lbfgs on unscaled features",
        "",
        "`python -m benchmarks.unscaled`: the sklearn sets as they ship, alpha = "
        f"1/n (C = 1); medians of {repeats} fits after a warm-up. LR: "
        "LogisticRegression(lbfgs, max_iter=10000), the faster of default BLAS "
        "threads and one BLAS thread. Gaps: training objective over the optimum "
        "(sksoftmax at tol=1e-10), minus 1.",
        "",
        "| data set | optimum | LR s (setting) | LR iter | LR gap | sksoftmax s | "
        "sksoftmax iter | sksoftmax gap | LR / sksoftmax |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['optimum']:.6g} | {r['lr_s']:.4f} "
            f"({r['lr_blas']}) | {r['lr_iter']} | {r['lr_gap']:+.2e} | "
            f"{r['ours_s']:.4f} | {r['ours_iter']} | {r['ours_gap']:+.2e} | "
            f"{r['lr_s'] / r['ours_s']:.2f}x |")
    return "\n".join(lines) + "\n"


def quotes(record):
    """Figures the docs quote, by ``<data set>.<what>``."""
    out = {}
    for r in record["rows"]:
        name = r["dataset"]
        out.update({
            f"{name}.ratio": f"{r['lr_s'] / r['ours_s']:.1f}×",
            f"{name}.lr_s": f"{r['lr_s']:.3f} s", f"{name}.lr_iter": str(r["lr_iter"]),
            f"{name}.ours_s": f"{r['ours_s']:.3f} s",
            f"{name}.ours_iter": str(r["ours_iter"]),
            f"{name}.lr_gap": f"{r['lr_gap']:+.1e}",
            f"{name}.ours_gap": f"{r['ours_gap']:+.1e}"})
    ratios = [r["lr_s"] / r["ours_s"] for r in record["rows"]]
    out["ratio_range"] = f"{min(ratios):.1f}–{max(ratios):.1f}×"
    out["repeats"] = str(record["settings"]["repeats"])
    return out


def tables(record):
    """Tables the docs show: ``{name: (header, rows)}``."""
    rows = [[r["dataset"],
             f"{r['lr_s']:.3f}, {r['lr_iter']}, {r['lr_gap']:+.1e} ({r['lr_blas']})",
             f"{r['ours_s']:.3f}, {r['ours_iter']}, {r['ours_gap']:+.1e}",
             f"{r['lr_s'] / r['ours_s']:.1f}×"] for r in record["rows"]]
    return {"summary": (["data set", "LR s, iter, gap (setting)",
                         "sksoftmax s, iter, gap", "LR / sksoftmax"], rows)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None, help="also write the table here")
    args = parser.parse_args(argv)
    write_record({"settings": {"repeats": args.repeats}, "rows": run(args.repeats)},
                 markdown, args.out)


if __name__ == "__main__":
    main()
