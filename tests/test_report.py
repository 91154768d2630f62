"""bench-report on a real (tiny) sweep: tables, LaTeX, learning curves, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.config import compose_config
from bench.report import write_report
from bench.report.build import choose_metric
from bench.report.tables import summary_table, to_latex, to_markdown
from bench.results import load_results
from bench.runner import run_job


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report")
    for method in ("majority", "logreg"):
        cfg = compose_config(
            [
                "dataset=callcenter",
                f"method={method}",
                "seeds=[0,1]",
                "n_train=[16,128]",
                f"results_dir={path}",
            ]
        )
        run_job(cfg)
    return path


def test_summary_table_aggregates_over_seeds(results_dir: Path) -> None:
    runs = load_results(results_dir)
    table = summary_table(runs, "accuracy")
    assert set(table["method"]) == {"majority", "logreg"}
    assert (table["seeds"] == 2).all()
    one = table[(table.method == "logreg") & (table.n_train == 128)].iloc[0]
    seeds = runs[(runs.method == "logreg") & (runs.n_train == 128)]["accuracy"]
    assert one["mean"] == pytest.approx(seeds.mean())
    assert one["std"] == pytest.approx(seeds.std())


def test_best_cell_is_bold_in_markdown_and_latex(results_dir: Path) -> None:
    table = summary_table(load_results(results_dir), "accuracy")
    markdown = to_markdown(table, higher_is_better=True)
    best = table.loc[table[table.n_train == 128]["mean"].idxmax()]
    best_row = next(line for line in markdown.splitlines() if line.startswith(f"| {best.method} |"))
    assert f"**{best['mean']:.3f}" in best_row
    # Lower-is-better metrics bold the minimum instead.
    flipped = to_markdown(table, higher_is_better=False)
    worst = table.loc[table[table.n_train == 128]["mean"].idxmin()]
    worst_row = next(
        line for line in flipped.splitlines() if line.startswith(f"| {worst.method} |")
    )
    assert f"**{worst['mean']:.3f}" in worst_row
    latex = to_latex(table, True, "a_caption with 50%")
    assert r"\toprule" in latex and r"\bottomrule" in latex
    assert r"a\_caption with 50\%" in latex
    assert r"\textbf{" in latex and "±" not in latex


def test_write_report_files(results_dir: Path) -> None:
    out = write_report(results_dir)
    for name in ("report.md", "callcenter.md", "callcenter.tex", "callcenter.png"):
        assert (out / name).is_file(), name
    assert (out / "callcenter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "## callcenter" in report and "roc_auc" in report  # binary task: ROC AUC by default
    assert re.search(r"\| majority \| classical \| 0\.500 ± 0\.000", report)


def test_metric_choice(results_dir: Path) -> None:
    runs = load_results(results_dir)
    assert all(labels == ["no", "yes"] for labels in runs["class_labels"])  # drives `auto`
    assert choose_metric(runs, "auto") == "roc_auc"
    assert choose_metric(runs, "log_loss") == "log_loss"
    with pytest.raises(KeyError, match="Did you mean 'log_loss'"):
        choose_metric(runs, "logloss")


def test_report_on_a_folder_without_runs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no runs/ folder"):
        write_report(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(ValueError, match="no run records"):
        write_report(tmp_path)
