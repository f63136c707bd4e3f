"""PNG plots derived from results.json (matplotlib, no display needed)."""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

REFERENCE = "LogisticRegression(lbfgs)"


def readable_log_ticks(ax):
    """No labels on the minor ticks of log axes (matplotlib labels every
    minor tick of a short range, and they overlap); on a range of at most
    two decades, labels at 1, 2 and 5 times the powers of ten instead."""
    for axis, scale, limits in ((ax.xaxis, ax.get_xscale(), ax.get_xlim()),
                                (ax.yaxis, ax.get_yscale(), ax.get_ylim())):
        if scale != "log":
            continue
        if max(limits) <= 100 * min(limits):
            axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(ticker.LogFormatterSciNotation(
                labelOnlyBase=False))
        axis.set_minor_formatter(ticker.NullFormatter())


def _save(fig, ax, path):
    """Legend, readable ticks, layout, PNG, and free the figure."""
    readable_log_ticks(ax)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_fit_time_vs_n(results, path):
    runs = [r for r in results.get("scaling", []) if r.get("status") == "ok"]
    if not runs:
        return False
    fig, ax = plt.subplots(figsize=(7, 5))
    for peer in sorted({r["peer"] for r in runs}):
        pts = sorted((r["n_train"], r["fit_s"]) for r in runs if r["peer"] == peer)
        ax.plot(*zip(*pts, strict=False), marker="o", label=peer)
    ax.set(xscale="log", yscale="log", xlabel="training rows n",
           ylabel="fit time, s (median)",
           title="Fit time against n (dense float32, d=100, K=10)")
    ax.grid(True, which="both", alpha=0.3)
    _save(fig, ax, path)
    return True


def plot_convergence(results, out_dir):
    written = []
    for dataset, curves in results.get("curves", {}).items():
        if not curves:
            continue
        best = min(p["objective"] for pts in curves.values() for p in pts)
        fig, ax = plt.subplots(figsize=(7, 5))
        for peer, pts in sorted(curves.items()):
            gaps = [max(p["objective"] - best, 1e-12) for p in pts]
            ax.plot([p["time_s"] for p in pts], gaps, marker=".", label=peer)
        ax.set(xscale="log", yscale="log", xlabel="wall time, s",
               ylabel="objective - best objective seen",
               title=f"Convergence on {dataset}")
        ax.grid(True, which="both", alpha=0.3)
        path = os.path.join(out_dir, f"convergence_{dataset}.png")
        _save(fig, ax, path)
        written.append(path)
    return written


def plot_speedup(results, path):
    records = [r for r in results["records"] if r.get("status") == "ok"]
    datasets = [d for d in dict.fromkeys(r["dataset"] for r in records)]
    ours = ["sksoftmax(lbfgs)", "sksoftmax(sgd)", "sksoftmax(adam)"]
    rows = []
    for d in datasets:
        ref = next((r for r in records if r["dataset"] == d and r["peer"] == REFERENCE),
                   None)
        if ref is None:
            continue
        rows.append((d, [next((ref["fit_s"] / r["fit_s"] for r in records
                               if r["dataset"] == d and r["peer"] == p), 0.0)
                         for p in ours]))
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(rows) + 2))
    height = 0.8 / len(ours)
    for j, peer in enumerate(ours):
        ax.barh([i + j * height for i in range(len(rows))], [v[j] for _, v in rows],
                height=height, label=peer)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks([i + height for i in range(len(rows))])
    ax.set_yticklabels([d for d, _ in rows], fontsize=8)
    ax.set(
        xscale="log",
        xlabel="speed-up over LogisticRegression(lbfgs) (fit time ratio)",
        title="Speed-up per data set (higher is faster)",
    )
    _save(fig, ax, path)
    return True


def plot_all(results, out_dir):
    plot_fit_time_vs_n(results, os.path.join(out_dir, "fit_time_vs_n.png"))
    plot_convergence(results, out_dir)
    plot_speedup(results, os.path.join(out_dir, "speedup.png"))


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        plot_all(json.load(f), os.path.dirname(os.path.abspath(sys.argv[1])))
