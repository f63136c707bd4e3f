"""Measurements that need a process of their own: peak memory and compile time.

Run as ``python -m benchmarks.measure memory '<json>'``,
``python -m benchmarks.measure compile [repeats [out.json]]`` (the records as
JSON on stdout, a markdown table on stderr; ``out.json`` gets them with the
environment, as the docs' recorded page reads them) or
``python -m benchmarks.measure compile-ab OTHER_CHECKOUT [repeats]`` (cold first
fits of another checkout and this one, interleaved; a markdown table).
"""

import gc
import json
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_memory_above_input(spec, peer_name, alpha, max_iter=None):
    """Peak resident memory of one fit above what the process held before it.

    The data are built and a warm-up fit is run first (so that compiled
    kernels and imports are not counted); then the kernel's high-water mark
    is reset (``/proc/self/clear_refs``) and a second fit is measured.
    """
    from benchmarks.datasets import load, nbytes
    from benchmarks.peers import peer_by_name

    X_train, _, y_train, _ = load(spec)
    peer = peer_by_name(peer_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer.make(alpha, len(y_train), max_iter=max_iter).fit(X_train, y_train)
        gc.collect()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current resident size
        before = _status_kib("VmRSS")
        model = peer.make(alpha, len(y_train), max_iter=max_iter).fit(X_train, y_train)
        peak = _status_kib("VmHWM")
    del model
    return {"peak_above_input_bytes": 1024 * max(peak - before, 0),
            "input_bytes": nbytes(X_train)}


_COMPILE_SCRIPT = """
import json, sys, time, warnings
t = time.perf_counter()
import sksoftmax
import_s = time.perf_counter() - t
import numpy as np, scipy.sparse as sp
fmt, dtype, solver, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rng = np.random.RandomState(0)
X = rng.randn(n, 5).astype(dtype)
y = rng.randint(0, 3, n)
if fmt == "csr":
    X = sp.csr_matrix(X)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    t = time.perf_counter()
    sksoftmax.SoftmaxRegressionClassifier(solver=solver, max_iter=5).fit(X, y)
print(json.dumps({"import": import_s, "fit": time.perf_counter() - t}))
"""

# (format, dtype, solver, rows): every solver and dtype on tiny data, and the
# threaded full pass (2 chunks need 8192 rows)
COMPILE_CASES = [(fmt, dtype, solver, 300) for fmt in ("dense", "csr")
                 for dtype in ("float64", "float32")
                 for solver in ("lbfgs", "sgd", "adam")]
COMPILE_CASES += [("dense", "float64", "lbfgs", 20_000),
                  ("csr", "float32", "lbfgs", 20_000)]


def compile_times(repeats=3, cases=COMPILE_CASES):
    """First fits in fresh processes: with an empty Numba cache, then a warm one.

    Each case (format, dtype, solver, rows) runs ``repeats`` times in a
    process of its own with a new, empty cache directory: that first fit
    compiles exactly what the case needs and nothing else. A second process
    on the same cache gives the warm time. Returns one record per case with
    the median cold and warm fit times and the import time, in seconds.
    """
    records = []
    for fmt, dtype, solver, n in cases:
        cold, warm, imports = [], [], []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as cache_dir:
                for times in (cold, warm):
                    out = _first_fit((fmt, dtype, solver, n), cache_dir)
                    times.append(out["fit"])
                    imports.append(out["import"])
        records.append({"format": fmt, "dtype": dtype, "solver": solver, "rows": n,
                        "cold_fit_s": float(np.median(cold)),
                        "warm_fit_s": float(np.median(warm)),
                        "import_s": float(np.median(imports)),
                        "cold_fit_all_s": cold})
    return records


def _first_fit(case, cache_dir, pythonpath=None):
    """``{"import": s, "fit": s}`` of one case, in a new process on ``cache_dir``."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT, *map(str, case)],
                          env=env, check=True, capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compile_ab(other_tree, repeats=5, cases=COMPILE_CASES):
    """Cold first fits of another checkout and of this one, interleaved.

    Each repeat runs every case once for each tree, alternately, so that the
    machine's drift hits both alike. Returns ``{case: {"other": [...], "this":
    [...]}}`` in seconds.
    """
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    times = {case: {"other": [], "this": []} for case in cases}
    for _ in range(repeats):
        for case in cases:
            for label, tree in (("other", other_tree), ("this", here)):
                with tempfile.TemporaryDirectory() as cache_dir:
                    times[case][label].append(
                        _first_fit(case, cache_dir, tree)["fit"])
    return times


def compile_table(records):
    """Markdown table of :func:`compile_times` records."""
    lines = ["| format | dtype | solver | rows | first fit, empty cache (s) | "
             "first fit, warm cache (s) | import (s) |",
             "|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['format']} | {r['dtype']} | {r['solver']} | {r['rows']} | "
                     f"{r['cold_fit_s']:.2f} | {r['warm_fit_s']:.2f} | "
                     f"{r['import_s']:.2f} |")
    return "\n".join(lines)


def markdown(record):
    """The page of a recorded compile measurement."""
    env = record["environment"]
    return "\n".join([
        "# Compile time of the first fit",
        "",
        f"`python -m benchmarks.measure compile {record['settings']['repeats']} "
        "OUT.json` on "
        f"{env['cpu_count']} CPUs, {env['date']}, numba {env['numba']}: each "
        "case's first fit (max_iter=5, 3 classes, 5 features) in a fresh "
        "process with an empty Numba cache (compilation), then in another "
        "process on the cache that left (loading it); "
        + ("one such pair" if record["settings"]["repeats"] == 1 else
           f"medians of {record['settings']['repeats']} such pairs")
        + ". `python -m sksoftmax.precompile` fills the cache ahead of time.",
        "",
        compile_table(record["rows"]), ""])


def quotes(record):
    """Figures the docs quote: ``<format>.<dtype>.<solver>.<rows>.cold`` /
    ``.warm``, and ``cold.<solver>`` / ``warm`` ranges over the cases."""
    out, cold, warm = {}, {}, []
    for r in record["rows"]:
        key = f"{r['format']}.{r['dtype']}.{r['solver']}.{r['rows']}"
        out[f"{key}.cold"] = f"{r['cold_fit_s']:.1f} s"
        out[f"{key}.warm"] = f"{r['warm_fit_s']:.2f} s"
        cold.setdefault(r["solver"], []).append(r["cold_fit_s"])
        warm.append(r["warm_fit_s"])
    for solver, times in cold.items():
        out[f"cold.{solver}"] = f"{min(times):.1f}–{max(times):.1f} s"
    out["warm"] = f"{min(warm):.2f}–{max(warm):.2f} s"
    return out


def run_child(*args, timeout=1800):
    """Run this module in a child process and return its JSON answer."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.measure", *args],
                          capture_output=True, text=True, timeout=timeout,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr else
                           f"exit {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv):
    if argv[0] == "memory":
        spec, peer_name, alpha = json.loads(argv[1]), argv[2], float(argv[3])
        max_iter = int(argv[4]) if len(argv) > 4 else None
        print(json.dumps(peak_memory_above_input(spec, peer_name, alpha, max_iter)))
    elif argv[0] == "compile":
        # compile [repeats [out.json]]: also prints a markdown table to stderr
        repeats = int(argv[1]) if len(argv) > 1 else 3
        records = compile_times(repeats)
        print(compile_table(records), file=sys.stderr)
        if len(argv) > 2:
            from benchmarks.run import environment

            with open(argv[2], "w") as f:
                json.dump({"environment": environment(),
                           "settings": {"repeats": repeats}, "rows": records},
                          f, indent=1)
        print(json.dumps(records))
    elif argv[0] == "compile-ab":
        # compile-ab OTHER_TREE [repeats]: interleaved cold first fits
        times = compile_ab(argv[1], int(argv[2]) if len(argv) > 2 else 5)
        print(f"| format | dtype | solver | rows | {argv[1]} (s) | this tree (s) |")
        print("|---|---|---|---|---:|---:|")
        for case, t in times.items():
            print("| " + " | ".join(map(str, case)) + f" | "
                  f"{np.median(t['other']):.2f} | {np.median(t['this']):.2f} |")
    else:
        raise SystemExit(f"unknown measurement {argv[0]!r}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main(sys.argv[1:])
