"""Threads for the full-batch passes: our own pool, fork- and thread-safe.

The kernels are serial ``@njit(nogil=True)`` functions over a range of rows;
parallelism comes from running one range per thread of a
:class:`~concurrent.futures.ThreadPoolExecutor`, never from Numba's
``parallel=True``. That choice is deliberate:

- Numba's threading layers are process-wide and none of the usual ones is
  both fork- and thread-safe (GNU OpenMP aborts forked children, workqueue
  aborts on concurrent use); Python threads calling nogil kernels are both.
- The pool lives only as long as one fit: no thread of ours exists between
  fits, so a ``fork`` after a fit finds none (and a fork during one leaves
  the child without the parent's fit, as it should).
- Several fits may run at once from different threads; each has its own
  pool and buffers, so they share nothing.

While a parallel pass runs, BLAS (which the dense kernel calls per block) is
held to one thread: nested BLAS threads oversubscribe the cores and make a
pass several times slower. The limit is reference-counted across
overlapping fits and restored when the last one ends, so nothing outlives
the calls that needed it.

This module imports nothing from scikit-learn.
"""

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numba
from threadpoolctl import ThreadpoolController

_blas_lock = threading.Lock()
_blas_users = 0
_blas_limiter = None
# made on first use, when the BLAS libraries are loaded; finding them is what
# costs in threadpool_limits (0.9 ms a call here), limiting them takes 15 us
_blas_controller = None


def _forget_parent_state():
    """In a forked child: a BLAS limit held by a parent's fit is not ours."""
    global _blas_lock, _blas_users, _blas_limiter
    _blas_lock = threading.Lock()
    if _blas_limiter is not None:
        # a fit in another thread of the parent held the limit at fork time;
        # that fit does not continue here, so give the child its BLAS back
        _blas_limiter.restore_original_limits()
    _blas_users = 0
    _blas_limiter = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_state)


def effective_n_threads(n_jobs):
    """Threads for ``n_jobs``: None is all, negative counts back (-1 is all).

    "All" is ``numba.config.NUMBA_NUM_THREADS``: the number of cores, unless
    the environment sets ``NUMBA_NUM_THREADS`` (as joblib's workers do, to
    share the cores between processes).
    """
    available = numba.config.NUMBA_NUM_THREADS
    if n_jobs is None:
        return available
    if n_jobs < 0:
        return max(1, available + 1 + n_jobs)
    return max(1, min(n_jobs, available))


def serial_map(func, n_chunks):
    """``[func(0), ..., func(n_chunks - 1)]`` on the calling thread."""
    return [func(c) for c in range(n_chunks)]


@contextlib.contextmanager
def chunk_map(n_threads):
    """A ``map(func, n_chunks)`` that runs the calls on up to ``n_threads`` threads.

    With one thread it is :func:`serial_map` and nothing is started. With more,
    a pool of ``n_threads - 1`` workers lives for the ``with`` block (the
    calling thread runs chunk 0 itself) and BLAS is held to one thread
    meanwhile (:func:`blas_single_threaded`). No thread outlives the block, so
    a later ``fork`` finds none.
    """
    if n_threads <= 1:
        yield serial_map
        return
    with blas_single_threaded(), ThreadPoolExecutor(
            max_workers=n_threads - 1, thread_name_prefix="sksoftmax") as pool:

        def pool_map(func, n_chunks):
            futures = [pool.submit(func, c) for c in range(1, n_chunks)]
            try:
                first = func(0)
            finally:
                # the other calls write into buffers the caller owns: wait for
                # them even when chunk 0 failed
                wait(futures)
            return [first, *(f.result() for f in futures)]

        yield pool_map


@contextlib.contextmanager
def blas_single_threaded():
    """Hold BLAS to one thread; overlapping holders share one limit.

    The first holder records the BLAS libraries' thread counts and limits
    them to one; the last one to leave restores what the first recorded.
    """
    global _blas_users, _blas_limiter, _blas_controller
    with _blas_lock:
        if _blas_users == 0:
            if _blas_controller is None:
                _blas_controller = ThreadpoolController()
            _blas_limiter = _blas_controller.limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None
