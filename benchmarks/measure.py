"""Measurements that need a process of their own: peak memory and compile time.

Run as ``python -m benchmarks.measure memory '<json>'`` or
``python -m benchmarks.measure compile``; each prints one JSON object.
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
import json, time, warnings
t = time.perf_counter()
import sksoftmax
import_s = time.perf_counter() - t
import numpy as np, scipy.sparse as sp
rng = np.random.RandomState(0)
X = rng.randn(300, 5); y = rng.randint(0, 3, 300)
cases = {
    "dense float64 lbfgs": (X, "lbfgs"),
    "dense float32 lbfgs": (X.astype(np.float32), "lbfgs"),
    "csr float64 lbfgs": (sp.csr_matrix(X), "lbfgs"),
    "dense float64 sgd": (X, "sgd"),
}
out = {"import sksoftmax": import_s}
for label, (data, solver) in cases.items():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        sksoftmax.SoftmaxRegressionClassifier(solver=solver, max_iter=5).fit(data, y)
        out[label] = time.perf_counter() - t
print(json.dumps(out))
"""


def compile_times():
    """First fits in fresh processes: with an empty Numba cache, then a warm one.

    Returns ``{"cold": {...}, "warm": {...}}``, seconds per first fit of each
    kind (dtype, format, solver) on a tiny problem, and the import time.
    """
    result = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
        for label in ("cold", "warm"):
            proc = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT], env=env,
                                  check=True, capture_output=True, text=True)
            result[label] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


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
        print(json.dumps(compile_times()))
    else:
        raise SystemExit(f"unknown measurement {argv[0]!r}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main(sys.argv[1:])
