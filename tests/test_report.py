"""bench-report on a real (tiny) sweep: tables, LaTeX, figures, HTML, the CLI, errors.

The exact numbers, ranks, Pareto fronts and verdict texts are checked on synthetic results with
known values in test_report_synthetic.py; here the report must work on what bench-run writes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.cli import report_main
from bench.config import compose_config
from bench.report import build, choose_metric, write_report
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
    runs = load_results(results_dir)
    for metric, pick in (("accuracy", "idxmax"), ("log_loss", "idxmin")):
        table = summary_table(runs, metric)
        best = table.loc[getattr(table[table.n_train == 128]["mean"], pick)()]
        markdown = to_markdown(table)
        best_row = next(line for line in markdown.splitlines() if f"| {best.method} |" in line)
        assert f"**{best['mean']:.3f}" in best_row, metric
    latex = to_latex(summary_table(runs, "accuracy"), "callcenter: accuracy")
    assert r"\toprule" in latex and r"\bottomrule" in latex and r"\textbf{" in latex


def test_write_report_files(results_dir: Path) -> None:
    out = write_report(results_dir)
    for name in ("report.md", "report.html", "callcenter.md", "callcenter.tex"):
        assert (out / name).is_file(), name
    for name in ("callcenter.png", "callcenter_cost.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    report = (out / "report.md").read_text()
    assert "## callcenter" in report and "roc_auc" in report  # binary task: ROC AUC by default
    assert re.search(r"\| classical \| majority \| 0\.500 ± 0\.000", report)
    # No LLM ran: the verdict says so instead of claiming anything.
    assert "No LLM-based method has results here: nothing to compare." in report
    assert "Runs: 8 (8 ok)." in report
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2


def test_every_report_file_is_written_whole(
    results_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each file goes through write_atomic (a temporary name, then a rename), so a crash never
    leaves half a report.html; nothing temporary is left behind."""
    written: list[str] = []

    def recording(path: Path, data: bytes) -> None:
        written.append(path.name)
        build_write(path, data)

    build_write = build.write_atomic
    monkeypatch.setattr(build, "write_atomic", recording)
    out = write_report(results_dir)
    on_disk = sorted(p.name for p in out.iterdir())
    assert sorted(written) == on_disk
    assert set(on_disk) >= {"report.md", "report.html", "callcenter.tex", "callcenter_cost.png"}


def test_cells_scored_on_another_test_set_are_marked(tmp_path: Path) -> None:
    """logreg scored on 100 test rows, majority on the default test set: the logreg cells are
    marked ‡ and a note says why, in the page and in the exported table."""
    for method, extra in (("majority", []), ("logreg", ["split.max_test_rows=100"])):
        overrides = ["dataset=callcenter", f"method={method}", "seeds=[0,1]", "n_train=[16]"]
        run_job(compose_config([*overrides, f"results_dir={tmp_path}", *extra]))
    runs = load_results(tmp_path)
    sizes = dict(zip(runs["method"], runs["n_test"], strict=True))
    assert sizes["logreg"] == 100 and sizes["majority"] > 100
    out = write_report(tmp_path)
    report = (out / "report.md").read_text()
    logreg = next(line for line in report.splitlines() if "| logreg |" in line)
    majority = next(line for line in report.splitlines() if "| majority |" in line)
    assert "‡" in logreg and "‡" not in majority
    note = f"‡: scored on another test set (100 test rows, the other cells {sizes['majority']})"
    assert note in report
    assert note in (out / "callcenter.md").read_text()


def test_metric_choice(results_dir: Path) -> None:
    runs = load_results(results_dir)
    assert all(labels == ["no", "yes"] for labels in runs["class_labels"])  # drives `auto`
    assert choose_metric(runs, "auto") == "roc_auc"
    assert choose_metric(runs.assign(class_labels=[["a", "b", "c"]] * len(runs)), "auto") == (
        "accuracy"
    )
    assert choose_metric(runs, "log_loss") == "log_loss"
    with pytest.raises(KeyError, match="Did you mean 'log_loss'"):
        choose_metric(runs, "logloss")


def test_cli_writes_the_report_with_a_chosen_metric(
    results_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_main([str(results_dir), "--metric", "log_loss"])
    assert "Report written to" in capsys.readouterr().out
    report = (results_dir / "report" / "report.md").read_text()
    assert "log loss (log_loss, lower is better)" in report
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(results_dir), "--metric", "logloss"])
    assert exit_info.value.code == 2
    assert "Did you mean 'log_loss'" in capsys.readouterr().err


def test_cli_refuses_bad_settings_naming_its_options(
    results_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(results_dir), "--margin", "-1", "--daily-predictions", "0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--margin=-1.0 must be a number >= 0" in err
    assert "--daily-predictions=0 must be > 0" in err


def test_report_on_a_folder_without_runs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no runs/ folder"):
        write_report(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(ValueError, match="no run records"):
        write_report(tmp_path)
