"""Markdown tables and target checks, derived from results.json alone."""

import json
import sys

from benchmarks.measure import compile_table

REFERENCE = "LogisticRegression(lbfgs)"


def _ok(records):
    return [r for r in records if r.get("status") == "ok"]


def _by(records, dataset, peer):
    for r in records:
        if r["dataset"] == dataset and r["peer"] == peer and r.get("status") == "ok":
            return r
    return None


def _first(points, condition):
    """The first point of a convergence curve that meets ``condition``."""
    return next((p for p in points if condition(p)), None)


def _mib(n_bytes):
    return f"{n_bytes / 2**20:.1f}"


def results_table(records, with_dataset=True):
    """One row per record; without the data set column when ``with_dataset``
    is False (a table per data set)."""
    head = "| data set " if with_dataset else ""
    lines = [
        f"{head}| model | fit s (median) | LR(lbfgs) / model | first fit s | "
        "iterations | objective | test acc | test log-loss | peak mem above X, MiB "
        "(% of X) |",
        "|---" * (9 + with_dataset) + "|",
    ]
    for r in records:
        first = f"| {r['dataset']} " if with_dataset else ""
        if r.get("status") != "ok":
            lines.append(f"{first}| {r['peer']} | {r['status']}: "
                         f"{r.get('reason', '')} | | | | | | | |")
            continue
        ref = _by(records, r["dataset"], REFERENCE)
        speed = f"{ref['fit_s'] / r['fit_s']:.2f}x" if ref else ""
        mem = ""
        if "peak_above_input_bytes" in r:
            mem = (f"{_mib(r['peak_above_input_bytes'])} "
                   f"({100 * r['peak_above_input_bytes'] / r['input_bytes']:.1f}%)")
        warn = " (ConvergenceWarning)" if "ConvergenceWarning" in r["warnings"] else ""
        cap = r.get("cap")
        if cap and cap["reached"]:
            warn += (f" (time capped at ~{cap['cap_s']:g} s: max_iter="
                     f"{cap['max_iter']}, {cap['why']})")
        runs = "" if r.get("timed_runs", 2) > 1 else " (1 run)"
        if "blas" in r:  # timed both ways, the faster shown
            runs += f" ({r['blas']})"
        lines.append(
            f"{first}| {r['peer']}{warn} | {r['fit_s']:.4f}{runs} | "
            f"{speed} | "
            f"{r['first_fit_s']:.3f} | {r['n_iter']} | {r['objective']:.7f} | "
            f"{r['test_accuracy']:.4f} | {r['test_log_loss']:.4f} | {mem} |")
    return "\n".join(lines)


def targets(results):
    """The performance targets of the benchmark issue, checked on this run."""
    records = results["records"]
    rows = []

    def add(name, goal, value, met):
        rows.append(f"| {name} | {goal} | {value} | {'met' if met else 'missed'} |")

    head = "blobs_n200000_d100_k10_float32"
    lr, ours = _by(records, head, REFERENCE), _by(records, head, "sksoftmax(lbfgs)")
    curves = results.get("curves", {}).get(head, {})
    if lr and ours:
        same = ours["objective"] <= lr["objective"] * (1 + 1e-6)
        ratio = lr["fit_s"] / ours["fit_s"]
        add(
            "dense f32 200k x 100, K=10: lbfgs (full default fit) vs LR(lbfgs)",
            "≥ 5×, objective within 1e-6 of LR's",
            f"{ratio:.2f}x (objective {ours['objective']:.8f} vs "
            f"{lr['objective']:.8f})",
            same and ratio >= 5,
        )
        hit = _first(curves.get("sksoftmax(lbfgs)", []),
                     lambda p: p["objective"] <= lr["objective"] * (1 + 1e-6))
        if hit:
            add("same: time for lbfgs to reach LR(lbfgs)'s final objective (1e-6)",
                "≥ 5×", f"{lr['fit_s'] / hit['time_s']:.2f}x ({hit['time_s']:.3f}s, "
                f"max_iter={hit['max_iter']})", lr["fit_s"] / hit["time_s"] >= 5)
    sgd = _by(records, head, "sksoftmax(sgd)")
    if lr and sgd:
        gap = 100 * (lr["test_accuracy"] - sgd["test_accuracy"])
        ratio = lr["fit_s"] / sgd["fit_s"]
        add(
            "same data: sgd, full default fit, vs LR(lbfgs)",
            "≥ 10×, test accuracy within 0.3 points",
            f"{ratio:.2f}x, accuracy {100 * sgd['test_accuracy']:.2f} vs "
            f"{100 * lr['test_accuracy']:.2f}",
            gap <= 0.3 and ratio >= 10,
        )
        hit = _first(curves.get("sksoftmax(sgd)", []),
                     lambda p: p["test_accuracy"] >= lr["test_accuracy"] - 0.003)
        if hit:
            add(
                "same: time for sgd (defaults) to reach LR(lbfgs)'s "
                "test accuracy - 0.3", "≥ 10×",
                f"{lr['fit_s'] / hit['time_s']:.2f}x ({hit['time_s']:.3f}s, "
                f"{hit['max_iter']} epoch(s))",
                lr["fit_s"] / hit["time_s"] >= 10,
            )
    if head in results.get("passes", {}):
        p = results["passes"][head]
        add("one loss-and-gradient pass vs numpy X @ W.T + G.T @ X", "≤ 2×",
            f"{p['ratio']:.2f}x ({1e3 * p['fused_pass_s']:.1f} ms vs "
            f"{1e3 * p['numpy_matmuls_s']:.1f} ms)", p["ratio"] <= 2)
    if ours and "peak_above_input_bytes" in ours:
        share = ours["peak_above_input_bytes"] / ours["input_bytes"]
        add("peak memory above X during the lbfgs fit", "< 10 % of X",
            f"{100 * share:.1f}% of X",
            share < 0.10)
    text = "text_n200000_d100000_k20_float32"
    lr_t, ours_t = _by(records, text, REFERENCE), _by(records, text, "sksoftmax(lbfgs)")
    if lr_t and ours_t:
        ratio = lr_t["fit_s"] / ours_t["fit_s"]
        same = ours_t["objective"] <= lr_t["objective"] * (1 + 1e-6)
        add("CSR 200k x 100k, K=20: lbfgs vs LR(lbfgs)",
            "≥ 3×, objective within 1e-6 of LR's",
            f"{ratio:.2f}x (objective {ours_t['objective']:.8f} vs "
            f"{lr_t['objective']:.8f})", same and ratio >= 3)
    for small in ("digits", "iris"):
        lr_s, ours_s = _by(records, small, REFERENCE), _by(records, small,
                                                            "sksoftmax(lbfgs)")
        if lr_s and ours_s:
            ratio = lr_s["fit_s"] / ours_s["fit_s"]
            add(f"{small}: lbfgs vs LR(lbfgs), warm cache", "≥ 1×", f"{ratio:.2f}x",
                ratio >= 1)
    wide = sorted(results.get("wide", []), key=lambda w: w["n_train"])
    if len(wide) >= 3:
        # Linear = affine: the marginal time per row is the same between every
        # pair of sizes; the intercept is the work that does not depend on n
        # (the L-BFGS update on K*d parameters).
        slopes = [(b["fit_s"] - a["fit_s"]) / (b["n_train"] - a["n_train"])
                  for a, b in zip(wide, wide[1:], strict=False)]
        spread = max(slopes) / min(slopes) if min(slopes) > 0 else float("inf")
        intercept = wide[0]["fit_s"] - slopes[0] * wide[0]["n_train"]
        add("K = d = 1000: time linear in n",
            "marginal time per row within 1.5× between sizes",
            ", ".join(f"n={w['n_train']}: {w['fit_s']:.2f}s" for w in wide)
            + "; marginal ms per 1000 rows "
            + ", ".join(f"{1e6 * s:.0f}" for s in slopes)
            + f" (max/min {spread:.2f}); n-independent part {intercept:.2f}s",
            spread < 1.5)
    if not rows:
        return ""
    return "\n".join(["| what | target | measured | met |", "|---|---|---|---|",
                      *rows])


def quotes(results):
    """Figures the docs quote, by ``<data set>.<peer>.<what>``: ``s`` (fit
    time; "capped" noted), ``iter``, ``ratio`` (LogisticRegression(lbfgs)'s
    time over the peer's), ``setting`` (the BLAS setting that counted)."""
    out = {}
    for r in _ok(results["records"]):
        key = f"{r['dataset']}.{r['peer']}"
        cap = r.get("cap")
        capped = (f" (capped at {cap['max_iter']} iterations)"
                  if cap and cap.get("reached") else "")
        out[f"{key}.s"] = f"{r['fit_s']:.3g} s{capped}"
        out[f"{key}.iter"] = str(r["n_iter"])
        out[f"{key}.setting"] = r.get("blas", "default threads")
        ref = _by(results["records"], r["dataset"], REFERENCE)
        if ref:
            out[f"{key}.ratio"] = f"{ref['fit_s'] / r['fit_s']:.2f}×"
    return out


def write_markdown(results, path):
    env = results["environment"]
    parts = [
        "# sksoftmax benchmark results", "",
        f"Preset `{results['preset']}`, alpha = {results['alpha']:g} "
        f"(LogisticRegression gets C = 1/(alpha n)); {env['date']}, "
        f"{env['cpu_count']} CPUs, Python {env['python']}, numpy {env['numpy']}, "
        f"scikit-learn {env['scikit-learn']}, numba {env['numba']}.", "",
        "Fit time: median of the timed fits after one warm-up fit (the 'first fit'"
        " column; on a fresh install it includes Numba's compilation). Objective: "
        "mean cross-entropy + alpha/2 ||W||^2 on the training data, computed the same"
        " way for every model.", "",
    ]
    tgt = targets(results)
    if tgt:
        parts += ["## Targets", "", tgt, ""]
    if isinstance(results.get("compile"), list):
        parts += ["## Compile time (first fit, each in a fresh process)", "",
                  compile_table(results["compile"]), ""]
    elif "compile" in results:  # runs recorded before the per-case measurement
        parts += [
            "## Compile time (first fit on a tiny problem, fresh process)",
            "",
            "| first fit of | empty cache, s | warm cache, s |",
            "|---|---:|---:|",
        ]
        for key, cold in results["compile"]["cold"].items():
            parts.append(
                f"| {key} | {cold:.2f} | {results['compile']['warm'][key]:.2f} |"
            )
        parts.append("")
    from benchmarks.datasets import describe

    parts += ["## All runs, by data set", "",
              "LogisticRegression(lbfgs) and the other scipy-driven peers are "
              "timed at default BLAS threads and with BLAS held to one thread "
              "where the record names a setting beside the time; the faster "
              "counts. Runs recorded before that rule name none.", ""]
    for dataset in dict.fromkeys(r["dataset"] for r in results["records"]):
        rows = [r for r in results["records"] if r["dataset"] == dataset]
        parts += [f"### {describe(dataset)}", "", results_table(rows, False), ""]
    if results.get("scaling"):
        parts += ["## Fit time against n (dense float32, d=100, K=10)", "",
                  results_table(results["scaling"]), ""]
    if results.get("wide"):
        parts += ["## K = 1000, d = 1000 (sksoftmax lbfgs, 10 iterations)", "",
                  "| n | fit s | peak mem above X, MiB |", "|---:|---:|---:|"]
        for w in results["wide"]:
            mem = (
                _mib(w["peak_above_input_bytes"])
                if "peak_above_input_bytes" in w
                else ""
            )
            parts.append(f"| {w['n_train']} | {w['fit_s']:.3f} | {mem} |")
        parts.append("")
    with open(path, "w") as f:
        f.write("\n".join(parts))


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(targets(json.load(f)))
