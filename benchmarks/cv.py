"""Cross-validated alpha: SoftmaxRegressionClassifierCV against its peers.

On each data set (a held-out test split aside), the same 5 stratified folds
and 10 alphas log-spaced over 1..1e-6 (the issue's sweep) are given to

- ``SoftmaxRegressionClassifierCV`` (warm-started paths, ``n_jobs=1``),
- ``GridSearchCV(SoftmaxRegressionClassifier(), {"alpha": alphas})``,
- ``LogisticRegressionCV`` with ``Cs = 1 / (alpha * n_train)`` (its C
  multiplies a sum over the fold's training rows), ``n_jobs=1``,

all scored by ``--scoring`` (default ``neg_log_loss``) and refitted. It
reports each one's time (median of ``--repeats`` after a warm-up for the
sksoftmax pair; LogisticRegressionCV once at default BLAS threads and once
with BLAS held to one thread, the faster counting), the ratios, the alpha each
chose, its test accuracy, and the mean iterations per alpha along our path.

Run from the repository root::

    python -m benchmarks.cv [--repeats 3] [--only digits,...] [--out FILE.md]
"""

import argparse

import numpy as np
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from benchmarks import datasets
from benchmarks.timing import fastest_setting, median_fit, write_record
from sksoftmax import SoftmaxRegressionClassifier, SoftmaxRegressionClassifierCV

SETS = [
    ("digits", {"kind": "sklearn", "name": "digits"}),
    ("mnist1d-like 4000x40 K=10", datasets.dense_features(4000, 40, 10,
                                                          dtype="float64")),
    ("embeddings 20k x 256 K=20", datasets.embeddings(20_000, 256, 20,
                                                      dtype="float64")),
]
ALPHAS = np.geomspace(1.0, 1e-6, 10)


def run(repeats, scoring, only=None):
    rows = []
    for name, spec in SETS:
        if only and not any(o in name for o in only):
            continue
        X, X_test, y, y_test = datasets.load(spec)
        folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
        n_train = np.mean([len(train) for train, _ in folds])
        ours_s, ours = median_fit(lambda f=folds: SoftmaxRegressionClassifierCV(
            alphas=ALPHAS, cv=f, scoring=scoring, n_jobs=1), X, y, repeats,
            warm_up=repeats > 1)
        grid_s, grid = median_fit(lambda f=folds: GridSearchCV(
            SoftmaxRegressionClassifier(), {"alpha": ALPHAS}, cv=f,
            scoring=scoring, n_jobs=1), X, y, repeats, warm_up=repeats > 1)
        lr_s, lr, lr_blas = fastest_setting(
            lambda f=folds, m=n_train: LogisticRegressionCV(
                Cs=1.0 / (ALPHAS[::-1] * m), cv=f, scoring=scoring, n_jobs=1,
                max_iter=1000), X, y, 1, warm_up=False)
        rows.append({
            "dataset": name, "shape": f"{X.shape[0]} x {X.shape[1]}",
            "ours_s": ours_s, "grid_s": grid_s, "lrcv_s": lr_s, "lrcv_blas": lr_blas,
            "ours_alpha": ours.alpha_, "grid_alpha": grid.best_params_["alpha"],
            "lrcv_alpha": 1.0 / (lr.C_[0] * n_train),
            "ours_acc": accuracy_score(y_test, ours.predict(X_test)),
            "grid_acc": accuracy_score(y_test, grid.predict(X_test)),
            "lrcv_acc": accuracy_score(y_test, lr.predict(X_test)),
            "iters": ours.n_iter_.mean(axis=0).round(1).tolist()})
    return rows


def markdown(record):
    rows = record["rows"]
    repeats, scoring = record["settings"]["repeats"], record["settings"]["scoring"]
    lines = [
        "# Cross-validated alpha: SoftmaxRegressionClassifierCV, GridSearchCV, "
        "LogisticRegressionCV",
        "",
        f"`python -m benchmarks.cv`: 5 stratified folds, 10 alphas over 1..1e-6, "
        f"scoring={scoring}, n_jobs=1 everywhere; LogisticRegressionCV with "
        "Cs = 1/(alpha n_train). sksoftmax times: median of "
        f"{repeats} after a warm-up; LogisticRegressionCV: one fit at default "
        "BLAS threads and one with BLAS held to one thread, the faster counts. "
        "Test accuracy on a held-out split.",
        "",
        "| data set | CV s | GridSearchCV s | LRCV s | LRCV / CV | grid / CV | "
        "alpha: CV, grid, LRCV | test acc: CV, grid, LRCV |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['ours_s']:.2f} | {r['grid_s']:.2f} | "
            f"{r['lrcv_s']:.2f} ({r.get('lrcv_blas', 'default threads')}) | "
            f"{r['lrcv_s'] / r['ours_s']:.1f}x | "
            f"{r['grid_s'] / r['ours_s']:.1f}x | {r['ours_alpha']:.0e}, "
            f"{r['grid_alpha']:.0e}, {r['lrcv_alpha']:.0e} | {r['ours_acc']:.4f}, "
            f"{r['grid_acc']:.4f}, {r['lrcv_acc']:.4f} |")
    lines += ["", "Mean iterations per alpha along the path (strongest first):", ""]
    for r in rows:
        lines.append(f"- {r['dataset']}: {r['iters']}")
    return "\n".join(lines) + "\n"


SHORT_NAMES = {"digits": "digits", "mnist1d-like 4000x40 K=10": "mnist1d",
               "embeddings 20k x 256 K=20": "embeddings"}


def quotes(record):
    """Figures the docs quote: ``<set>.<what>`` (set: digits, mnist1d or
    embeddings) and ranges over the sets."""
    out = {}
    rows = record["rows"]
    for r in rows:
        key = SHORT_NAMES.get(r["dataset"], r["dataset"])
        out.update({f"{key}.lrcv_ratio": f"{r['lrcv_s'] / r['ours_s']:.1f}×",
                    f"{key}.grid_ratio": f"{r['grid_s'] / r['ours_s']:.1f}×",
                    f"{key}.alpha": f"{r['ours_alpha']:.0e}",
                    f"{key}.peak_iter": f"{max(r['iters']):.0f}"})
    grid = [r["grid_s"] / r["ours_s"] for r in rows]
    lrcv = [r["lrcv_s"] / r["ours_s"] for r in rows]
    out["grid_ratio_range"] = f"{min(grid):.1f}–{max(grid):.1f}×"
    out["lrcv_ratio_range"] = f"{min(lrcv):.1f}–{max(lrcv):.1f}×"
    apart = max(abs(r["ours_acc"] - r["lrcv_acc"]) for r in rows)
    out["acc_apart"] = f"{100 * apart:.2f}"
    out["same_alpha"] = ("on every set" if all(
        r["ours_alpha"] == r["grid_alpha"] for r in rows) else "not on every set")
    return out


def tables(record):
    """Tables the docs show: ``{name: (header, rows)}``."""
    rows = [[r["dataset"], f"{r['ours_s']:.2f}", f"{r['grid_s']:.2f}",
             f"{r['lrcv_s']:.2f}", f"{r['lrcv_s'] / r['ours_s']:.1f}×",
             f"{r['grid_s'] / r['ours_s']:.1f}×", f"{r['ours_alpha']:.0e}"]
            for r in record["rows"]]
    return {"summary": (["data set", "CV s", "GridSearchCV s", "LRCV s",
                         "LRCV / CV", "grid / CV", "alpha chosen"], rows)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scoring", default="neg_log_loss")
    parser.add_argument("--only", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    only = args.only.split(",") if args.only else None
    write_record({"settings": {"repeats": args.repeats, "scoring": args.scoring},
                  "rows": run(args.repeats, args.scoring, only)}, markdown, args.out)


if __name__ == "__main__":
    main()
