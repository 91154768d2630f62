"""Learning curves: a metric against n_train (log axis), a line per method, a band over seeds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["learning_curve"]


def learning_curve(table: pd.DataFrame, metric: str, title: str, path: Path) -> Path:
    """Plot `summary_table` output: mean line and mean +- std band for each method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    # A tuned variant shares its base method's colour and is drawn dashed.
    bases = sorted({m.removesuffix("_tuned") for m in table["method"] if m != "majority"})
    palette = plt.get_cmap("tab10" if len(bases) <= 10 else "tab20")
    colours = {base: palette(i % palette.N) for i, base in enumerate(bases)}
    for (_family, method), rows in table.groupby(["family", "method"]):
        rows = rows.sort_values("n_train")
        if method == "majority":
            style = {"linestyle": ":", "color": "black"}
        else:
            base = method.removesuffix("_tuned")
            style = {"linestyle": "--" if method != base else "-", "color": colours[base]}
        (line,) = ax.plot(rows["n_train"], rows["mean"], marker="o", ms=3, label=method, **style)
        ax.fill_between(
            rows["n_train"],
            rows["mean"] - rows["std"],
            rows["mean"] + rows["std"],
            alpha=0.15,
            color=line.get_color(),
        )
    ax.set_xscale("log")
    sizes = sorted(table["n_train"].unique())
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training rows (n_train, log scale)")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
