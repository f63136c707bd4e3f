"""
========================================
Text classification with TF-IDF features
========================================

Bag-of-words text gives wide, sparse matrices: here 10,000 documents over a
vocabulary of several thousand words, of which each document uses a few
dozen. ``SoftmaxRegressionClassifier`` takes scipy's CSR matrices as they are
(never densified) and keeps :class:`~sklearn.feature_extraction.text.TfidfVectorizer`'s
float32 output in float32.

The corpus is made by a generator, so the example needs no download: each
topic draws its words from its own Zipf law over a shared vocabulary of
made-up words, mixed with a common background of function words, as real
text is (a few frequent words, a long tail of rare ones).
"""

import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import ConfusionMatrixDisplay, log_loss
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from sksoftmax import SoftmaxRegressionClassifier

rng = np.random.default_rng(0)
topics = ["sport", "finance", "science", "politics", "travel", "music"]
syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "do", "gu"]
vocabulary = np.unique(
    ["".join(rng.choice(syllables, size=rng.integers(2, 5))) for _ in range(6_000)]
)
background = vocabulary[:60]  # frequent words every topic uses


def zipf_weights(size, exponent=1.1):
    weights = 1.0 / np.arange(1, size + 1) ** exponent
    return weights / weights.sum()


# each topic ranks the vocabulary in its own order
topic_ranks = [rng.permutation(vocabulary) for _ in topics]
word_weights = zipf_weights(len(vocabulary))


def document(topic):
    n_words = rng.integers(10, 60)
    n_topic = rng.binomial(n_words, 0.15)  # the rest is background
    words = np.concatenate([
        rng.choice(topic_ranks[topic], size=n_topic, p=word_weights),
        rng.choice(background, size=n_words - n_topic),
    ])
    return " ".join(rng.permutation(words))


labels = rng.integers(len(topics), size=10_000)
corpus = [document(t) for t in labels]
print("a document about", topics[labels[0]], ":", corpus[0][:100], "...")

docs_train, docs_test, y_train, y_test = train_test_split(
    corpus, labels, test_size=0.25, stratify=labels, random_state=0
)
vectorizer = TfidfVectorizer(sublinear_tf=True, dtype=np.float32)
X_train = vectorizer.fit_transform(docs_train)
X_test = vectorizer.transform(docs_test)
print(f"X_train: {X_train.shape[0]:,} x {X_train.shape[1]:,} {X_train.dtype} CSR, "
      f"{X_train.nnz / X_train.shape[0]:.0f} non-zeros per row")

# %%
# Both models at the same objective (``C = 1 / (alpha * n_samples)``);
# fit times are medians of three fits after a warm-up fit. Each fit stops by
# its own rule, so the objective it reached (the log-loss of its
# ``predict_proba`` on the training rows plus ``alpha / 2 * ||W||²``) is
# printed too: in float32 the L-BFGS runs stop where float32 rounding stalls
# them, at different distances from the optimum.
alpha = 1e-5
models = {
    "LogisticRegression": LogisticRegression(C=1 / (alpha * X_train.shape[0]),
                                             max_iter=1000),
    "sksoftmax lbfgs": SoftmaxRegressionClassifier(alpha=alpha),
    "sksoftmax sgd": SoftmaxRegressionClassifier(alpha=alpha, solver="sgd",
                                                 random_state=0),
}
for name, model in models.items():
    # LogisticRegression's lbfgs (scipy's L-BFGS-B) can lose from BLAS threads
    # on few cores: it is timed with the default threads and with one, the
    # faster counting
    settings = (None, 1) if name == "LogisticRegression" else (None,)
    medians = []
    for threads in settings:
        with threadpool_limits(threads, user_api="blas"):
            model.fit(X_train, y_train)
            times = []
            for _ in range(3):
                start = time.perf_counter()
                model.fit(X_train, y_train)
                times.append(time.perf_counter() - start)
        medians.append(np.median(times))
    objective = log_loss(y_train, model.predict_proba(X_train)) + alpha / 2 * np.sum(
        model.coef_.astype(np.float64) ** 2
    )
    n_iter = int(np.max(model.n_iter_))
    print(f"{name:<20} fit {min(medians):6.3f} s, {n_iter:3d} iterations, "
          f"objective {objective:.5f}, "
          f"test accuracy {model.score(X_test, y_test):.4f}, coef_ {model.coef_.dtype}")

# %%
# The words with the largest coefficients for each topic, and the confusion
# matrix on the test documents.
model = models["sksoftmax lbfgs"]
words = vectorizer.get_feature_names_out()
for k, topic in enumerate(topics):
    top = words[np.argsort(model.coef_[k])[-6:][::-1]]
    print(f"{topic:>9}: {' '.join(top)}")

fig, ax = plt.subplots(figsize=(5.5, 5))
ConfusionMatrixDisplay.from_estimator(
    model, X_test, y_test, display_labels=topics, ax=ax, colorbar=False
)
ax.tick_params(axis="x", labelrotation=45)
fig.tight_layout()
plt.show()
