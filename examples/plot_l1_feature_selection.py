"""
=========================================
Feature selection on text with an L1 path
=========================================

An L1 penalty makes a multinomial model sparse: a word whose coefficients
are zero in every class is dropped by the model, so the penalty selects the
vocabulary the classes need. ``l1_ratio=1`` with the default
``solver="lbfgs"`` fits by OWL-QN (orthant-wise L-BFGS), whose zeros are
exact: a coefficient stops at zero instead of crossing it, and
``coef_ == 0`` is the selection.

A path over ``alpha``, from strong to weak, with ``warm_start=True``: each
fit starts from the previous model, which is already near the next optimum.
The corpus is generated (no download): each topic draws its words from its
own Zipf law over a shared vocabulary of made-up words, mixed with a common
background of function words that carry no topic.
"""

import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import train_test_split

from sksoftmax import SoftmaxRegressionClassifier

rng = np.random.default_rng(0)
topics = ["sport", "finance", "science", "politics", "travel"]
syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "do"]
vocabulary = np.unique(
    ["".join(rng.choice(syllables, size=rng.integers(2, 5))) for _ in range(3_000)]
)
background = vocabulary[:50]  # frequent words every topic uses
weights = 1.0 / np.arange(1, len(vocabulary) + 1) ** 1.1
weights /= weights.sum()
topic_ranks = [rng.permutation(vocabulary) for _ in topics]


def document(topic):
    n_words = rng.integers(10, 50)
    n_topic = rng.binomial(n_words, 0.2)
    words = np.concatenate([
        rng.choice(topic_ranks[topic], size=n_topic, p=weights),
        rng.choice(background, size=n_words - n_topic),
    ])
    return " ".join(words)


labels = rng.integers(len(topics), size=4_000)
corpus = [document(t) for t in labels]
train, test, y_train, y_test = train_test_split(corpus, labels, random_state=0)
vectorizer = TfidfVectorizer()
X_train = vectorizer.fit_transform(train)
X_test = vectorizer.transform(test)
words = vectorizer.get_feature_names_out()
print(f"{X_train.shape[0]} documents, {X_train.shape[1]} words")

# %%
# The path
# --------
# ``alpha`` from where almost every word is dropped to where most are kept.
# ``tol`` bounds the largest entry of the minimum-norm subgradient, in the
# units of ``alpha``: with ``alpha`` near 1e-4 the default ``tol=1e-4`` would
# accept the previous model whenever ``alpha`` moved by less than that, so a
# path takes a ``tol`` well below its smallest ``alpha``.
alphas = np.geomspace(3e-3, 3e-5, 12)
model = SoftmaxRegressionClassifier(l1_ratio=1.0, warm_start=True, tol=1e-6)
kept, accuracy, seconds = [], [], []
for alpha in alphas:
    start = time.perf_counter()
    model.set_params(alpha=alpha).fit(X_train, y_train)
    seconds.append(time.perf_counter() - start)
    selected = np.any(model.coef_ != 0, axis=0)
    kept.append(selected.sum())
    accuracy.append(model.score(X_test, y_test))
    print(f"alpha={alpha:.1e}: {kept[-1]:5d} words kept, test accuracy "
          f"{accuracy[-1]:.3f}, {model.n_iter_:3d} iterations, {seconds[-1]:.2f} s")

fig, ax = plt.subplots(figsize=(6, 4))
ax.semilogx(alphas, kept, "o-", color="C0")
ax.set_xlabel("alpha")
ax.set_ylabel("words with a non-zero coefficient", color="C0")
ax.invert_xaxis()
ax2 = ax.twinx()
ax2.semilogx(alphas, accuracy, "s--", color="C1")
ax2.set_ylabel("test accuracy", color="C1")
ax.set_title("L1 path: vocabulary kept and accuracy")
fig.tight_layout()

# %%
# What the model keeps
# --------------------
# At a moderate ``alpha``, the words each topic leans on most: words from the
# head of that topic's own Zipf law, which the other topics rarely use.
model = SoftmaxRegressionClassifier(alpha=3e-4, l1_ratio=1.0, tol=1e-6)
model.fit(X_train, y_train)
selected = np.any(model.coef_ != 0, axis=0)
print(f"{selected.sum()} of {len(words)} words kept, "
      f"{np.mean(model.coef_ == 0):.1%} of the coefficients exactly zero")
for k, topic in enumerate(topics):
    top = np.argsort(model.coef_[k])[::-1][:6]
    head = set(topic_ranks[k][:100])
    print(f"{topic:>9}: " + ", ".join(words[top])
          + f"  ({sum(w in head for w in words[top])} of 6 in its 100 most likely)")
