"""Mutation testing of one module with mutmut, against the tests that target it.

Usage (from the repository root, with the ``dev`` extra installed)::

    python tools/mutation.py _math            # one module
    python tools/mutation.py all              # every module below, in turn

mutmut reads its configuration from ``pyproject.toml`` and runs every mutant
against the tests that reached the mutated function in a first traced run of
a fixed test selection. To give each module its own, smaller selection (times
on 2 cores are in CONTRIBUTING.md), this script copies the tracked files to
``.mutation/<module>/``, adds a ``[tool.mutmut]`` table for that module there
and runs ``mutmut run`` in the copy; the repository itself is left as it is.
Results stay in the copy: ``cd .mutation/_math && mutmut results`` lists the
survivors and ``mutmut show NAME`` shows one.

mutmut never mutates decorated functions, so the ``@njit`` kernels (and
properties) are out of its reach; the kernels are tested against the NumPy
reference in ``sksoftmax._math`` instead. ``_kernels``, ``_steps`` and the
CUDA kernels are such modules; the dask and ONNX layers run under their own
slower tests and are left to the full suite.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

# module -> the test files that target it (the selection mutmut traces; the
# functions that only the estimator calls are reached by the _estimator run)
TESTS = {
    "_math": ["tests/test_math.py"],
    "_parallel": ["tests/test_reliability.py", "tests/test_kernels.py"],
    "_objective": ["tests/test_objective.py", "tests/test_layers.py"],
    "_solvers": ["tests/test_solvers.py", "tests/test_layers.py"],
    # (not the two fits against saga's optimum: 20 s a mutant that survives)
    "_lbfgs": ["tests/test_solvers.py", "tests/test_l1.py", "-k",
               "not sagas_optimum"],
    "_path": ["tests/test_path.py"],
    "_estimator": ["tests/test_estimator.py"],
}

# the estimator's tests start joblib (loky) worker processes: run them in a
# fork server, so that mutmut's own process never holds (and reaps) them
ISOLATION = {"_estimator": "forkserver"}

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """
[tool.mutmut]
source_paths = ["sksoftmax/"]
only_mutate = ["sksoftmax/{module}.py"]
also_copy = ["tests/", "conftest.py"]
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "--no-header"]
pytest_add_cli_args_test_selection = {tests}
# a mutant that makes a solver loop for ever is stopped at 5x the clean run
timeout_multiplier = 5.0
process_isolation = "{isolation}"
"""


def prepare(module):
    """Copy the tracked files to .mutation/<module>/ and configure mutmut."""
    work = ROOT / ".mutation" / module
    if work.exists():
        shutil.rmtree(work)
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    for name in files:
        target = work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    with open(work / "pyproject.toml", "a") as f:
        f.write(CONFIG.format(module=module, tests=json.dumps(TESTS[module]),
                              isolation=ISOLATION.get(module, "fork")))
    return work


def summary(work):
    """Counts of mutmut's outcomes and the names of the survivors."""
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"],
                         cwd=work, capture_output=True, text=True).stdout
    counts, survivors = {}, []
    for line in out.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if not name:
            continue
        counts[status] = counts.get(status, 0) + 1
        if status == "survived":
            survivors.append(name)
    return counts, survivors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", choices=[*TESTS, "all"])
    parser.add_argument("--max-children", type=int, default=os.cpu_count())
    parser.add_argument("--only", nargs="+", default=[], metavar="PATTERN",
                        help="mutant names to run (fnmatch patterns, e.g. "
                             "'*_partial_fit*'); all by default")
    args = parser.parse_args()
    for module in TESTS if args.module == "all" else [args.module]:
        work = prepare(module)
        run = subprocess.run([sys.executable, "-m", "mutmut", "run",
                              "--max-children", str(args.max_children),
                              *args.only],
                             cwd=work, stdout=subprocess.DEVNULL)
        if run.returncode:
            print(f"{module}: mutmut run failed (exit {run.returncode})")
            continue
        counts, survivors = summary(work)
        tested = sum(n for status, n in counts.items()
                     if status not in ("no tests", "not checked"))
        score = counts.get("killed", 0) / tested if tested else float("nan")
        print(f"{module}: score {score:.1%} of {tested} mutants reached by the "
              f"tests; {counts}")
        for name in survivors:
            print(f"  survived: {name}")


if __name__ == "__main__":
    main()
