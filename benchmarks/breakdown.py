"""Where an L-BFGS fit spends its time: loss-and-gradient passes vs the optimiser.

For ``LogisticRegression(lbfgs)`` and ``sksoftmax(lbfgs)`` on one data set, a
warm-up fit, then one profiled fit with a fixed ``max_iter``, split as in
``benchmarks.targets``: the loss-and-gradient passes, the L-BFGS routine's own
time (the quasi-Newton update and line search bookkeeping; O(n_params) per
iteration, whatever n), setup (the CSC copy of sparse input) and the rest.
Also times the reference products ``X @ W.T`` and ``G.T @ X`` with numpy or
scipy.sparse on the same arrays (``run.products_time``). Prints a markdown
table::

    python -m benchmarks.breakdown --only text --max-iter 20
"""

import argparse
import json
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks import datasets
from benchmarks.peers import LogReg, SkSoftmax
from benchmarks.run import ALPHA, products_time
from benchmarks.targets import profiled_fit

SETS = {
    "blobs": datasets.blobs(200_000, 100, 10, "float32"),
    "text": datasets.sparse_text(200_000, 100_000, 20),
    "text-flat": datasets.sparse_text(200_000, 100_000, 20, vocabulary="flat"),
    "text-zipf": datasets.sparse_text(200_000, 100_000, 20, vocabulary="zipf"),
}


def profile_fit(peer, X, y, max_iter):
    """A warm-up fit, then one profiled fit (``targets.profiled_fit``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer.make(ALPHA, len(y), max_iter=max_iter).fit(X, y)
    model = peer.make(ALPHA, len(y), max_iter=max_iter)
    row = profiled_fit(model, X, y)
    return dict(row, peer=peer.name, n_iter=peer.n_iter(model),
                n_params=int(model.coef_.size + model.intercept_.size))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SETS), default=None)
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    rows = []
    print("| data set | model | iterations | evaluations | total s | loss+gradient s "
          "(per evaluation ms) | L-BFGS s (per iteration ms) | setup s | other s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, spec in SETS.items():
        if args.only and name != args.only:
            continue
        X, _, y, _ = datasets.load(spec)
        k = len(np.unique(y))
        for peer in (LogReg("lbfgs"), SkSoftmax("lbfgs")):
            row = dict(profile_fit(peer, X, y, args.max_iter), dataset=spec["name"])
            rows.append(row)
            print(
                f"| {spec['name']} | {row['peer']} | {row['n_iter']} | "
                f"{row['evaluations']} | {row['fit_s']:.2f} | "
                f"{row['pass_s']:.2f} "
                f"({1e3 * row['pass_s'] / max(row['evaluations'], 1):.0f}) | "
                f"{row['update_s']:.2f} "
                f"({1e3 * row['update_s'] / max(row['n_iter'], 1):.0f}) | "
                f"{row['setup_s']:.2f} | {row['rest_s']:.2f} |",
                flush=True,
            )
        for threads in (1, None):
            with threadpool_limits(threads):
                s = products_time(X, k, repeats=5)
            rows.append({"dataset": spec["name"], "reference_products_s": s,
                         "blas_threads": threads or "default"})
            print(f"| {spec['name']} | X @ W.T + G.T @ X "
                  f"({threads or 'default'} BLAS threads) | | | {s:.3f} | | | | |")
        del X
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
