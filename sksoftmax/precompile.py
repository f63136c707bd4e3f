"""Fill Numba's on-disk cache with the kernels that fits use.

The first fit of each solver, dtype and input format compiles its kernels
(seconds each) and caches them on disk. Container images, CI jobs and fresh
environments can pay that once, ahead of time::

    python -m sksoftmax.precompile
    python -m sksoftmax.precompile --solvers lbfgs --dtypes float32 --formats csr

It fits tiny problems, one per combination asked for, so exactly the
specialisations a real fit uses are compiled (the threaded full pass runs the
same kernels as the serial one). The cache lives where Numba puts it:
``NUMBA_CACHE_DIR`` when set, else ``__pycache__`` beside the installed
package when writable, else a per-user cache directory. Build the cache with
the same Python, Numba and CPU family that will use it: Numba recompiles
otherwise.
"""

import argparse
import time
import warnings

import numpy as np
import scipy.sparse as sp

SOLVERS = ("lbfgs", "sgd", "adam")
DTYPES = ("float64", "float32")
FORMATS = ("dense", "csr")


def precompile(solvers=SOLVERS, dtypes=DTYPES, formats=FORMATS, verbose=False):
    """Compile (or load from the cache) the kernels of the given fits.

    Parameters
    ----------
    solvers : sequence of {"lbfgs", "sgd", "adam"}
    dtypes : sequence of {"float64", "float32"}
    formats : sequence of {"dense", "csr"}
        Dense means C-ordered arrays; CSR matrices with int32 indices (what
        scipy makes for all but huge matrices).
    verbose : bool
        Print one line per combination with the time it took.

    Returns
    -------
    seconds : dict
        ``{(format, dtype, solver): seconds}`` for each fit, plus
        ``("any", "float64", "lbfgs-compact")`` for the L-BFGS that large
        models use when ``"lbfgs"`` is asked for.

    Examples
    --------
    >>> from sksoftmax.precompile import precompile
    >>> seconds = precompile(solvers=["lbfgs"], dtypes=["float64"],
    ...                      formats=["dense"])
    >>> list(seconds)
    [('dense', 'float64', 'lbfgs'), ('any', 'float64', 'lbfgs-compact')]
    """
    from sksoftmax import SoftmaxRegressionClassifier
    from sksoftmax._lbfgs import compact_lbfgs
    from sksoftmax._objective import SoftmaxObjective

    rng = np.random.RandomState(0)
    X = rng.randn(60, 4)
    y = np.arange(60) % 3
    seconds = {}
    for fmt in formats:
        for dtype in dtypes:
            data = X.astype(dtype)
            if fmt == "csr":
                data = sp.csr_matrix(data)
            for solver in solvers:
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # 2 iterations: not converged
                    SoftmaxRegressionClassifier(solver=solver, max_iter=2).fit(data, y)
                if solver == "lbfgs":
                    # large models also estimate the curvature (preconditioner)
                    SoftmaxObjective(data, y.astype(np.intp), np.ones(len(y)),
                                     3).curvature_estimate()
                seconds[fmt, dtype, solver] = time.perf_counter() - start
                if verbose:
                    print(f"{fmt:5s} {dtype:7s} {solver:5s} "
                          f"{seconds[fmt, dtype, solver]:6.2f} s", flush=True)
    if "lbfgs" in solvers:
        # the L-BFGS of large models (float64 whatever the data)
        start = time.perf_counter()
        center = np.arange(4.0)
        compact_lbfgs(lambda p: (0.5 * float((p - center) @ (p - center)), p - center),
                      np.zeros(4), max_iter=3, tol=1e-12, ftol=0.0, scale=np.ones(4))
        seconds["any", "float64", "lbfgs-compact"] = time.perf_counter() - start
        if verbose:
            print(f"L-BFGS of large models "
                  f"{seconds['any', 'float64', 'lbfgs-compact']:6.2f} s")
    return seconds


def _choices(allowed):
    def parse(text):
        values = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated subset of {', '.join(allowed)}; "
                f"got {text!r}")
        return values
    return parse


def main(argv=None):
    """Command line of ``python -m sksoftmax.precompile``.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments (``--solvers``, ``--dtypes``, ``--formats``, each a
        comma-separated subset); None reads ``sys.argv``.

    Examples
    --------
    >>> from sksoftmax.precompile import main
    >>> main(["--solvers", "lbfgs", "--dtypes", "float64", "--formats", "dense"])
    dense float64 lbfgs ... s
    L-BFGS of large models ... s
    done in ... s; cache: ...
    """
    parser = argparse.ArgumentParser(
        prog="python -m sksoftmax.precompile",
        description="Fill Numba's on-disk cache with sksoftmax's kernels.")
    parser.add_argument("--solvers", type=_choices(SOLVERS), default=list(SOLVERS),
                        help="comma-separated (default: all)")
    parser.add_argument("--dtypes", type=_choices(DTYPES), default=list(DTYPES),
                        help="comma-separated (default: all)")
    parser.add_argument("--formats", type=_choices(FORMATS), default=list(FORMATS),
                        help="comma-separated (default: all)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    precompile(args.solvers, args.dtypes, args.formats, verbose=True)
    from sksoftmax import _kernels

    location = getattr(getattr(_kernels._dense_range, "stats", None), "cache_path",
                       None)
    print(f"done in {time.perf_counter() - start:.1f} s; cache: {location}")


if __name__ == "__main__":
    main()
