"""Scale-out: one L-BFGS fit in memory, on dask with 1 and 2 workers, from disk.

The data are ``--rows`` x ``--features`` float32 rows drawn N(0, 1) and
labels drawn from a softmax teacher (``--classes`` classes), generated chunk
by chunk where they will live: in this process for the in-memory fit, on the
workers for the dask fits (persisted there), and written once as an
``.npy`` stack for the disk fit, whose workers have too little memory
(``--disk-worker-memory``) for the data to be persisted, so every pass reads
the chunks again. Each configuration runs in a process of its own:

- ``in-memory``: a NumPy array, ``n_jobs`` = all cores;
- ``dask-1-worker``: a LocalCluster of one worker process with all cores as
  threads;
- ``dask-2-workers``: two worker processes of half the cores each;
- ``disk-2-workers``: as above, memory-limited, the chunks from disk
  (warm in the page cache after the first pass: this machine has the RAM
  for it, so it measures streaming chunks through the workers, not the
  disk's speed).

Reported per configuration: the first fit of a tiny problem (Numba compile
or cache load, in every worker), the fit time (median of ``--repeats``), its
iterations and final objective (they must agree), one loss-and-gradient pass
(median of 3), the per-pass latency of the dask driver on a tiny problem with
the same number of chunks, peak resident memory of every worker process and
of the client during the fits (sampled every 50 ms with psutil), and the
bytes each worker exchanges per pass.

    python -m benchmarks.scaleout --out docs/benchmark_results/scaleout
    python -m benchmarks.scaleout --rows 400000 --out /tmp/scaleout  # a quick run
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings

import numpy as np

from benchmarks.run import environment

CONFIGS = ("in-memory", "dask-1-worker", "dask-2-workers", "disk-2-workers")


# ------------------------------------------------------------------ the data
def teacher(d, k, seed=0):
    """The coefficients labels are drawn from (logits of standard deviation 2)."""
    return np.random.default_rng(seed).standard_normal((k, d)) * (2.0 / np.sqrt(d))


def make_chunk(block, rows, d, k, seed=0):
    """Rows ``block * rows ...`` of the data: float32 X and intp labels drawn
    from ``softmax(W x)`` (Gumbel-max). The same for any chunking."""
    rng = np.random.default_rng([seed, block])
    X = rng.standard_normal((rows, d), dtype=np.float32)
    logits = X @ teacher(d, k, seed).T.astype(np.float32)
    y = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1).astype(np.intp)
    return X, y


def chunk_sizes(n, chunk_rows):
    sizes = [chunk_rows] * (n // chunk_rows)
    if n % chunk_rows:
        sizes.append(n % chunk_rows)
    return sizes


def numpy_data(n, d, k, chunk_rows):
    X = np.empty((n, d), dtype=np.float32)
    y = np.empty(n, dtype=np.intp)
    start = 0
    for b, rows in enumerate(chunk_sizes(n, chunk_rows)):
        X[start:start + rows], y[start:start + rows] = make_chunk(b, rows, d, k)
        start += rows
    return X, y


def dask_data(n, d, k, chunk_rows):
    """Lazy dask arrays whose chunks are generated where they are computed."""
    import dask
    import dask.array as da
    Xs, ys = [], []
    for b, rows in enumerate(chunk_sizes(n, chunk_rows)):
        pair = dask.delayed(make_chunk, nout=2, pure=True)(b, rows, d, k)
        Xs.append(da.from_delayed(pair[0], (rows, d), dtype=np.float32))
        ys.append(da.from_delayed(pair[1], (rows,), dtype=np.intp))
    return da.concatenate(Xs), da.concatenate(ys)


# ------------------------------------------------------------- measurements
class MemorySampler:
    """Peak resident memory of a few processes, sampled every ``interval`` s."""

    def __init__(self, pids, interval=0.05):
        import psutil
        self.processes = {pid: psutil.Process(pid) for pid in pids}
        self.peaks = dict.fromkeys(pids, 0)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for pid, process in self.processes.items():
                try:
                    rss = process.memory_info().rss
                except Exception:  # a worker restarting
                    continue
                self.peaks[pid] = max(self.peaks[pid], rss)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def median_seconds(f, repeats):
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = f()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), times, result


def tiny_fit(make_X_y, solver):
    """Seconds of a first fit on a tiny problem: what compiling (or loading
    the cached kernels) costs a fresh process."""
    from sksoftmax import SoftmaxRegressionClassifier
    X, y = make_X_y()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SoftmaxRegressionClassifier(solver=solver, max_iter=5).fit(X, y)
    return time.perf_counter() - start


def fit_record(make_estimator, X, y, repeats):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        median, times, model = median_seconds(lambda: make_estimator().fit(X, y),
                                              repeats)
    return model, {"fit_s": median, "fit_times_s": times,
                   "n_iter": int(model.n_iter_),
                   "final_loss_curve": float(model.loss_curve_[-1]),
                   "coef_checksum": float(np.abs(model.coef_).sum())}


def exact_objective(objective, model):
    """The training objective of a fitted model, over all rows."""
    return float(objective.objective(objective.init_params(model.coef_,
                                                           model.intercept_)))


def child(config, args):
    """One configuration, in this process; returns its record."""
    from sksoftmax import SoftmaxRegressionClassifier

    n, d, k, chunk_rows = args.rows, args.features, args.classes, args.chunk_rows

    def make_estimator():
        return SoftmaxRegressionClassifier(solver=args.solver, tol=args.tol,
                                           max_iter=args.max_iter, random_state=0)

    record = {"config": config, "solver": args.solver, "rows": n, "features": d,
              "classes": k, "chunk_rows": chunk_rows,
              "n_chunks": len(chunk_sizes(n, chunk_rows)), "x_bytes": n * d * 4}
    if config == "in-memory":
        from sksoftmax._objective import SoftmaxObjective
        from sksoftmax._parallel import effective_n_threads
        record["warmup_s"] = tiny_fit(lambda: make_chunk(0, 300, d, k), args.solver)
        start = time.perf_counter()
        X, y = numpy_data(n, d, k, chunk_rows)
        record["data_s"] = time.perf_counter() - start
        with MemorySampler([os.getpid()]) as sampler:
            model, fitted = fit_record(make_estimator, X, y, args.repeats)
        record.update(fitted)
        record["client_peak_bytes"] = sampler.peaks[os.getpid()]
        objective = SoftmaxObjective(X, y, np.ones(n), k, alpha=model.alpha,
                                     n_threads=effective_n_threads(None))
        record["final_objective"] = exact_objective(objective, model)
        params = np.random.default_rng(0).standard_normal(objective.n_params) * 0.01
        with objective.parallel():
            record["pass_s"] = median_seconds(
                lambda: objective.loss_gradient(params), 3)[0]
        return record

    import dask
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    from sksoftmax import _dask
    cores = os.cpu_count()
    workers = 1 if config == "dask-1-worker" else 2
    memory = args.disk_worker_memory if config.startswith("disk") else "auto"
    with LocalCluster(n_workers=workers, threads_per_worker=max(1, cores // workers),
                      memory_limit=memory, processes=True, dashboard_address=None,
                      worker_dashboard_address=None) as cluster, \
            Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        record.update(workers=workers, threads_per_worker=max(1, cores // workers),
                      worker_memory_limit=memory)
        record["warmup_s"] = tiny_fit(lambda: (
            da.from_array(make_chunk(0, 300, d, k)[0], chunks=(100, d)),
            da.from_array(make_chunk(0, 300, d, k)[1], chunks=100)), args.solver)
        start = time.perf_counter()
        if config.startswith("disk"):
            X = da.from_npy_stack(os.path.join(args.disk_dir, "X"), mmap_mode=None)
            y = da.from_npy_stack(os.path.join(args.disk_dir, "y"), mmap_mode=None)
        else:
            X, y = dask_data(n, d, k, chunk_rows)
            X, y = dask.persist(X, y)
            wait([X, y])
        record["data_s"] = time.perf_counter() - start
        with MemorySampler([*pids, os.getpid()]) as sampler:
            model, fitted = fit_record(make_estimator, X, y, args.repeats)
        record.update(fitted)
        record["worker_peak_bytes"] = [sampler.peaks[p] for p in pids]
        record["client_peak_bytes"] = sampler.peaks[os.getpid()]
        est = make_estimator()
        objective, _ = _dask.objective(_dask.as_features(X), y, None, alpha=est.alpha,
                                       fit_intercept=est.fit_intercept)
        record["final_objective"] = exact_objective(objective, model)
        record["persisted"] = bool(_dask_persisted(objective))
        params = np.random.default_rng(0).standard_normal(objective.n_params) * 0.01
        record["pass_s"] = median_seconds(lambda: objective.loss_gradient(params), 3)[0]
        # the driver's own cost per pass: as many chunks, one row per class each
        n_chunks = record["n_chunks"]
        tiny_X = da.from_array(np.ones((n_chunks * k, d), np.float32),
                               chunks=(k, d))
        tiny_y = da.from_array(np.tile(np.arange(k), n_chunks), chunks=k)
        tiny, _ = _dask.objective(_dask.as_features(tiny_X), tiny_y, None,
                                  alpha=est.alpha, fit_intercept=est.fit_intercept)
        record["latency_s"] = median_seconds(lambda: tiny.loss_gradient(params),
                                             5)[0]
        record["bytes_per_worker_per_pass"] = 2 * 8 * objective.n_params
    return record


def _dask_persisted(objective):
    from distributed import futures_of
    return len(futures_of(objective.X)) > 0


def write_disk_stack(args):
    """The data as .npy stacks in ``args.disk_dir``, written by 2 workers."""
    import dask.array as da
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        X, y = dask_data(args.rows, args.features, args.classes, args.chunk_rows)
        start = time.perf_counter()
        da.to_npy_stack(os.path.join(args.disk_dir, "X"), X)
        da.to_npy_stack(os.path.join(args.disk_dir, "y"), y)
        return time.perf_counter() - start


# ------------------------------------------------------------------ reports
def _gib(b):
    return f"{b / 2**30:.2f}"


def write_markdown(records, env, path):
    first = records[0]
    lines = [
        f"# Scale-out: solver={first['solver']!r} on {first['rows']:,} x "
        f"{first['features']} float32, K = {first['classes']}",
        "",
        f"`python -m benchmarks.scaleout` on {env['cpu_count']} cores; X is "
        f"{_gib(first['x_bytes'])} GiB in {first['n_chunks']} chunks of "
        f"{first['chunk_rows']:,} rows. Fit: median of the runs listed; pass: "
        "one loss-and-gradient evaluation, median of 3; latency: the dask "
        "driver's pass over as many chunks of K rows (its fixed cost per "
        "iteration). Memory: peak resident set during the fits.",
        "",
        "| configuration | fit (s) | runs (s) | iterations | objective at the end | "
        "pass (s) | latency (s) | peak per worker (GiB) | client peak (GiB) | "
        "X persisted | first tiny fit (s) |",
        "|---|---:|---|---:|---:|---:|---:|---|---:|---|---:|",
    ]
    for r in records:
        workers = ", ".join(_gib(b) for b in r.get("worker_peak_bytes", [])) or "-"
        runs = ", ".join(f"{t:.1f}" for t in r["fit_times_s"])
        latency = f"{r['latency_s']:.3f}" if "latency_s" in r else "-"
        lines.append(
            f"| {r['config']} | {r['fit_s']:.1f} | {runs} | {r['n_iter']} | "
            f"{r['final_objective']:.8f} | {r['pass_s']:.3f} | {latency} | "
            f"{workers} | {_gib(r['client_peak_bytes'])} | "
            f"{r.get('persisted', '-')} | {r['warmup_s']:.1f} |")
    dask_rows = [r for r in records if "bytes_per_worker_per_pass" in r]
    if dask_rows:
        r = dask_rows[0]
        lines += [
            "",
            f"Per pass each worker receives the parameters and sends gradient "
            f"sums: {r['bytes_per_worker_per_pass'] / 2:,.0f} bytes each way "
            f"(K x (d + 1) x 8), against a pass of {r['pass_s']:.2f} s.",
        ]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def quotes(record):
    """Figures the docs quote: ``<config>.<what>`` (fit_s, n_iter, pass_s,
    objective, client_gib, worker_gib, latency_ms), and ``rows``,
    ``x_gib``, ``chunks``, ``bytes_each_way``."""
    records = record["records"]
    first = records[0]
    out = {"rows": f"{first['rows']:,}", "x_gib": f"{_gib(first['x_bytes'])} GiB",
           "chunks": str(first["n_chunks"]),
           "chunk_rows": f"{first['chunk_rows']:,}"}
    for r in records:
        key = r["config"]
        out.update({f"{key}.fit_s": f"{r['fit_s']:.1f} s",
                    f"{key}.n_iter": str(r["n_iter"]),
                    f"{key}.pass_s": f"{r['pass_s']:.2f} s",
                    f"{key}.objective": f"{r['final_objective']:.8f}",
                    f"{key}.client_gib": f"{_gib(r['client_peak_bytes'])} GiB"})
        if r.get("worker_peak_bytes"):
            out[f"{key}.worker_gib"] = ", ".join(
                _gib(b) for b in r["worker_peak_bytes"]) + " GiB"
        if "latency_s" in r:
            out[f"{key}.latency_ms"] = f"{1e3 * r['latency_s']:.0f} ms"
        if "bytes_per_worker_per_pass" in r:
            out["bytes_each_way"] = f"{r['bytes_per_worker_per_pass'] // 2:,}"
    return out


def tables(record):
    """Tables the docs show: ``{name: (header, rows)}``."""
    rows = []
    for r in record["records"]:
        workers = ", ".join(_gib(b) for b in r.get("worker_peak_bytes", [])) or "—"
        rows.append([r["config"], f"{r['fit_s']:.1f}", str(r["n_iter"]),
                     f"{r['pass_s']:.2f}", workers, _gib(r["client_peak_bytes"])])
    return {"summary": (["configuration", "fit, s", "iterations", "pass, s",
                         "peak per worker, GiB", "client, GiB"], rows)}


def plot(records, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.plots import readable_log_ticks
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    names = [r["config"] for r in records]
    left.barh(names, [r["fit_s"] for r in records], color="tab:blue")
    left.set_xlabel("fit time (s)")
    left.invert_yaxis()
    peaks = [max(r.get("worker_peak_bytes", [r["client_peak_bytes"]])) / 2**30
             for r in records]
    right.barh(names, peaks, color="tab:orange")
    right.axvline(records[0]["x_bytes"] / 2**30, color="k", ls="--", lw=1,
                  label="size of X")
    right.set_xlabel("peak resident memory of the largest process (GiB)")
    right.invert_yaxis()
    right.legend(loc="lower right")
    fig.tight_layout()
    for each in fig.axes:
        readable_log_ticks(each)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--chunk-rows", type=int, default=250_000)
    parser.add_argument("--solver", default="lbfgs", choices=["lbfgs", "sgd", "adam"])
    parser.add_argument("--tol", default="auto",
                        type=lambda v: v if v == "auto" else float(v))
    parser.add_argument("--max-iter", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--disk-worker-memory", default="2GiB")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--out", default="benchmarks/results/scaleout")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--disk-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args)))
        return
    os.makedirs(args.out, exist_ok=True)
    configs = args.configs.split(",")
    records = []
    disk_dir = tempfile.mkdtemp(prefix="sksoftmax-scaleout-")
    try:
        write_s = None
        if any(c.startswith("disk") for c in configs):
            args.disk_dir = disk_dir
            write_s = write_disk_stack(args)
        for config in configs:
            command = [sys.executable, "-m", "benchmarks.scaleout", "--child", config,
                       "--disk-dir", disk_dir]
            command += [a for a in (argv if argv is not None else sys.argv[1:])]
            print(f"{config} ...", file=sys.stderr, flush=True)
            out = subprocess.run(command, capture_output=True, text=True)
            if out.returncode:
                print(out.stderr[-4000:], file=sys.stderr)
                raise SystemExit(f"{config} failed")
            record = json.loads(out.stdout.strip().splitlines()[-1])
            if config.startswith("disk"):
                record["write_s"] = write_s
            records.append(record)
            print(json.dumps(record), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(disk_dir, ignore_errors=True)
    env = environment()
    name = os.path.join(args.out, "scaleout" if args.solver == "lbfgs"
                        else f"scaleout_{args.solver}")
    with open(name + ".json", "w") as f:
        json.dump({"environment": env, "records": records}, f, indent=1)
    write_markdown(records, env, name + ".md")
    plot(records, name + ".png")
    print(open(name + ".md").read())


if __name__ == "__main__":
    main()
