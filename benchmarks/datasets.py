"""Benchmark data: the sets that ship with scikit-learn and generated ones.

Data sets are described by small dicts (so that a child process can rebuild
exactly the same data from its description) and built by :func:`load`.
Building is never timed.
"""

import numpy as np
import scipy.sparse as sp
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

SKLEARN_SETS = {"iris": load_iris, "wine": load_wine,
                "breast_cancer": load_breast_cancer, "digits": load_digits}


def sklearn_set(name):
    return {"kind": "sklearn", "name": name, "dtype": "float64"}


def blobs(n, d, k, dtype="float32", seed=0):
    """Gaussian mixture: one unit-variance cluster per class, ~90-95% separable."""
    return {"kind": "blobs", "name": f"blobs_n{n}_d{d}_k{k}_{dtype}", "n": n, "d": d,
            "k": k, "dtype": dtype, "seed": seed}


def dense_features(n, d, k, dtype="float32", seed=0, separation=6.0, decay=0.5):
    """Dense features shaped like image pixels: overlapping classes, correlated
    features, standardised.

    Class centres are ``separation`` apart on average (unit noise): with a
    few hundred rows per class in thousands of dimensions the classes are
    learnt about as well as from CIFAR-100 pixels (``blobs`` there are
    separable and fit in 3-4 L-BFGS iterations). The latent scales spread as
    ``(j + 1) ** -decay``, then a random rotation mixes every feature with
    every other (as neighbouring pixels are) and each column is standardised,
    as a user's ``StandardScaler`` would: the problem is ill-conditioned
    through correlations, which no per-feature scaling undoes.
    """
    return {"kind": "dense_features", "name": f"features_n{n}_d{d}_k{k}_{dtype}",
            "n": n, "d": d, "k": k, "dtype": dtype, "seed": seed,
            "separation": separation, "decay": decay}


def embeddings(n, d, k, dtype="float32", seed=0, separation=0.8, decay=1.0):
    """Dense rows shaped like a neural encoder's embeddings (CLIP, BERT).

    Classes are Gaussian clusters in a latent space whose scales fall as
    ``(j + 1) ** -decay`` (a few directions carry most of the variance), a
    random rotation mixes them into every feature, every row shares one large
    common direction (embeddings are anisotropic: far from centred), and each
    row is L2-normalised, as users do before a linear probe. Nothing is
    standardised: the problem keeps the correlations and the offset that
    make plain minibatch steps slow.
    """
    return {"kind": "embeddings", "name": f"embeddings_n{n}_d{d}_k{k}_{dtype}",
            "n": n, "d": d, "k": k, "dtype": dtype, "seed": seed,
            "separation": separation, "decay": decay}


# Term frequencies by rank r = 0, 1, ...: "flat" (every term equally frequent),
# "zipf" (proportional to 1 / (r + 1)), and the first sets' skewed law (the
# default, so that recorded results keep their names).
VOCABULARIES = {
    "skewed": lambda r: 1.0 / (r + 10.0) ** 1.1,
    "zipf": lambda r: 1.0 / (r + 1.0),
    "flat": lambda r: np.ones_like(r),
}


def sparse_text(n, d, k, nnz_per_row=50, dtype="float32", seed=0,
                vocabulary="skewed"):
    """CSR bag-of-words-like data, rows l2-normalised, planted linear labels.

    ``vocabulary`` is the law of the columns' frequencies (:data:`VOCABULARIES`).
    """
    prefix = "text" if vocabulary == "skewed" else f"text-{vocabulary}"
    return {"kind": "sparse_text", "name": f"{prefix}_n{n}_d{d}_k{k}_{dtype}", "n": n,
            "d": d, "k": k, "nnz_per_row": nnz_per_row, "dtype": dtype, "seed": seed,
            "vocabulary": vocabulary}


_KINDS = {"blobs": "dense blobs", "features": "dense features",
          "embeddings": "embeddings", "text": "CSR text, skewed",
          "text-flat": "CSR text, flat", "text-zipf": "CSR text, Zipf"}


def _count(n):
    if n >= 10**6 and n % 10**6 == 0:
        return f"{n // 10**6}M"
    if n >= 10**4 and n % 10**3 == 0:
        return f"{n // 10**3}k"
    return str(n)


def describe(name):
    """A generated set's name for a reader: ``"text-flat_n200000_d100000_k20_float32"``
    -> ``"CSR text, flat, 200k × 100k, K = 20, float32"``; other names as
    they are."""
    parts = name.split("_")
    if len(parts) != 5 or parts[0] not in _KINDS:
        return name
    kind, n, d, k, dtype = parts
    return (f"{_KINDS[kind]}, {_count(int(n[1:]))} × {_count(int(d[1:]))}, "
            f"K = {k[1:]}, {dtype}")


def _test_size(n):
    return min(n // 5, 20_000)


def _blobs(spec):
    rng = np.random.default_rng(spec["seed"])
    n, d, k = spec["n"], spec["d"], spec["k"]
    n_total = n + _test_size(n)
    # centre spread 3.5 / sqrt(d) keeps pairwise centre distances ~5 for any d
    centers = rng.standard_normal((k, d)).astype(spec["dtype"]) * (3.5 / np.sqrt(d))
    y = rng.integers(0, k, n_total)
    X = rng.standard_normal((n_total, d), dtype=np.float32).astype(spec["dtype"],
                                                                   copy=False)
    X += centers[y]
    return X[:n], X[n:], y[:n], y[n:]


def _dense_features(spec):
    rng = np.random.default_rng(spec["seed"])
    n, d, k = spec["n"], spec["d"], spec["k"]
    n_total = n + _test_size(n)
    centers = rng.standard_normal((k, d), dtype=np.float32)
    centers *= spec["separation"] / np.sqrt(2 * d)
    y = rng.integers(0, k, n_total)
    latent = rng.standard_normal((n_total, d), dtype=np.float32)
    latent += centers[y]
    latent *= np.arange(1, d + 1, dtype=np.float32) ** -spec["decay"]
    rotation, _ = np.linalg.qr(rng.standard_normal((d, d)))
    X = latent @ rotation.astype(np.float32)
    del latent
    X -= X[:n].mean(axis=0)
    X /= X[:n].std(axis=0)
    X = X.astype(spec["dtype"], copy=False)
    return X[:n], X[n:], y[:n], y[n:]


def _embeddings(spec):
    rng = np.random.default_rng(spec["seed"])
    n, d, k = spec["n"], spec["d"], spec["k"]
    n_total = n + _test_size(n)
    scales = np.arange(1, d + 1, dtype=np.float32) ** -spec["decay"]
    centers = rng.standard_normal((k, d), dtype=np.float32) * spec["separation"]
    y = rng.integers(0, k, n_total)
    latent = rng.standard_normal((n_total, d), dtype=np.float32)
    latent += centers[y]
    latent *= scales
    rotation, _ = np.linalg.qr(rng.standard_normal((d, d)))
    X = latent @ rotation.astype(np.float32)
    del latent
    common = rng.standard_normal(d).astype(np.float32)
    X += common * (2.0 * np.linalg.norm(X[:n], axis=1).mean() / np.linalg.norm(common))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    X = X.astype(spec["dtype"], copy=False)
    return X[:n], X[n:], y[:n], y[n:]


def _sparse_text(spec):
    rng = np.random.default_rng(spec["seed"])
    n, d, k, nnz = spec["n"], spec["d"], spec["k"], spec["nnz_per_row"]
    n_total = n + _test_size(n)
    col_p = VOCABULARIES[spec.get("vocabulary", "skewed")](np.arange(d, dtype=float))
    col_p /= col_p.sum()
    indices = rng.choice(d, size=n_total * nnz, p=col_p).astype(np.int32)
    data = (1.0 + rng.exponential(1.0, size=n_total * nnz)).astype(spec["dtype"])
    indptr = np.arange(0, n_total * nnz + 1, nnz, dtype=np.int64)
    X = sp.csr_matrix((data, indices, indptr), shape=(n_total, d))
    X.sum_duplicates()
    # tf-idf-like scaling: rows to unit norm
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.csr_matrix(
        sp.diags(1.0 / np.maximum(norms, 1e-12)).astype(spec["dtype"]) @ X
    )
    W = rng.standard_normal((d, k)).astype(np.float32) * 4.0
    scores = np.asarray(X @ W) + rng.gumbel(size=(n_total, k))
    y = scores.argmax(axis=1)
    return X[:n], X[n:], y[:n], y[n:]


def load(spec):
    """Build ``(X_train, X_test, y_train, y_test)`` for a data set description."""
    if spec["kind"] == "sklearn":
        X, y = SKLEARN_SETS[spec["name"]](return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.25, stratify=y, random_state=0)
        scaler = StandardScaler().fit(X_train)
        return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test
    if spec["kind"] == "blobs":
        return _blobs(spec)
    if spec["kind"] == "sparse_text":
        return _sparse_text(spec)
    if spec["kind"] == "dense_features":
        return _dense_features(spec)
    if spec["kind"] == "embeddings":
        return _embeddings(spec)
    raise ValueError(f"unknown data set kind {spec['kind']!r}")


def nbytes(X):
    """Memory held by a dense array or a CSR matrix."""
    if sp.issparse(X):
        return X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    return X.nbytes
