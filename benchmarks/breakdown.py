"""Where an L-BFGS fit spends its time: loss-and-gradient passes vs the optimiser.

For ``LogisticRegression(lbfgs)`` and ``sksoftmax(lbfgs)`` on one data set, a
warm-up fit, then one profiled fit with a fixed ``max_iter``; the profile is
split into the time inside the loss-and-gradient function, the time inside
scipy's L-BFGS-B routine (``setulb``: the quasi-Newton update, the line search
bookkeeping; it is O(n_params) per call and does not depend on n) and the
rest. Also times the reference products ``X @ W.T`` and ``G.T @ X`` with numpy
or scipy.sparse on the same arrays (``run.products_time``). Prints a markdown table::

    python -m benchmarks.breakdown --only text --max-iter 20
"""

import argparse
import cProfile
import json
import pstats
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks import datasets
from benchmarks.peers import LogReg, SkSoftmax
from benchmarks.run import ALPHA, products_time

SETS = {
    "blobs": datasets.blobs(200_000, 100, 10, "float32"),
    "text": datasets.sparse_text(200_000, 100_000, 20),
    "text-flat": datasets.sparse_text(200_000, 100_000, 20, vocabulary="flat"),
    "text-zipf": datasets.sparse_text(200_000, 100_000, 20, vocabulary="zipf"),
}
# (file fragment, function name) of each model's loss-and-gradient
LOSS_FUNCTIONS = [("sksoftmax/_objective.py", "loss_gradient"),
                  ("sklearn/linear_model/_linear_loss.py", "loss_gradient")]


def _seconds(stats, file_part, name, cumulative=True):
    total, calls = 0.0, 0
    for (file, _, func), (_, n_calls, tottime, cumtime, _) in stats.stats.items():
        if file_part in file and name in func:
            total += cumtime if cumulative else tottime
            calls += n_calls
    return total, calls


def profile_fit(peer, X, y, max_iter):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer.make(ALPHA, len(y), max_iter=max_iter).fit(X, y)
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        model = peer.make(ALPHA, len(y), max_iter=max_iter).fit(X, y)
        profiler.disable()
        total = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    loss_s, evaluations = 0.0, 0
    for file_part, name in LOSS_FUNCTIONS:
        s, n = _seconds(stats, file_part, name)
        loss_s, evaluations = loss_s + s, evaluations + n
    setulb_s, _ = _seconds(stats, "~", "setulb", cumulative=False)
    return {"peer": peer.name, "total_s": total, "n_iter": peer.n_iter(model),
            "evaluations": evaluations, "loss_gradient_s": loss_s,
            "lbfgsb_s": setulb_s, "other_s": total - loss_s - setulb_s,
            "n_params": int(model.coef_.size + model.intercept_.size)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SETS), default=None)
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    rows = []
    print("| data set | model | iterations | evaluations | total s | loss+gradient s "
          "(per evaluation ms) | L-BFGS-B s (per iteration ms) | other s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
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
                f"{row['evaluations']} | {row['total_s']:.2f} | "
                f"{row['loss_gradient_s']:.2f} "
                f"({1e3 * row['loss_gradient_s'] / max(row['evaluations'], 1):.0f}) | "
                f"{row['lbfgsb_s']:.2f} "
                f"({1e3 * row['lbfgsb_s'] / max(row['n_iter'], 1):.0f}) | "
                f"{row['other_s']:.2f} |",
                flush=True,
            )
        for threads in (1, None):
            with threadpool_limits(threads):
                s = products_time(X, k, repeats=5)
            rows.append({"dataset": spec["name"], "reference_products_s": s,
                         "blas_threads": threads or "default"})
            print(f"| {spec['name']} | X @ W.T + G.T @ X "
                  f"({threads or 'default'} BLAS threads) | | | {s:.3f} | | | |")
        del X
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
