"""The report on the synthetic results store (tests/synthetic_store.py): tables, ranks, cost,
the run summary and the written files. Its verdicts: tests/test_report_synthetic_verdict.py."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_store import (
    LLM,
    SEEDS,
    record,
    report_runs,
    write_store,
)

from bench.report import write_report
from bench.report.content import collect
from bench.report.cost import cost_per_1k
from bench.report.plots import shot_positions
from bench.report.ranks import rank_grid, rank_table
from bench.report.runs import prepare_runs
from bench.report.summary import summarize_runs
from bench.report.tables import summary_grid, summary_table, to_latex, to_markdown
from bench.results import ResultsStore, load_results


def _row(markdown: str, method: str) -> list[str]:
    line = next(x for x in markdown.splitlines() if f"| {method} |" in x)
    return [c.strip() for c in line.strip("|").split("|")][2:]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def runs(store: Path) -> pd.DataFrame:
    return report_runs(store)


# --- tables ---------------------------------------------------------------------------------


def test_table_numbers_bold_and_daggers(runs: pd.DataFrame) -> None:
    table = summary_table(runs[runs["dataset"] == "alpha"], "roc_auc")
    markdown = to_markdown(table)
    assert markdown.splitlines()[0] == "| family | method | n=0 | n=16 | n=64 | n=256 |"
    # half-widths: 4.302653 x sd / sqrt(3); sd 0.02 -> 0.050, sd 0.01 -> 0.025
    assert _row(markdown, "majority") == ["-", "0.500 ± 0.000", "0.500 ± 0.000", "0.500 ± 0.000"]
    # n=16: best llm 0.810; logreg's paired gap (+0.02, -0.01, +0.02 below the best) has
    # p = 0.42 -> †; lightgbm (0.09 below, sd 0.01) and majority are significantly worse.
    assert _row(markdown, "logreg") == [
        "-",
        "0.800 ± 0.050†",
        "0.710 ± 0.025",
        "0.860 ± 0.025",  # 256: gap 0.04, sd 0.01 -> p = 0.020, last in Holm's order: not †
    ]
    # n=64: lightgbm 0.800 vs best 0.807: gaps (0.01, 0, 0.01), t = 2, p = 0.18 -> †
    assert _row(markdown, "lightgbm") == [
        "-",
        "0.720 ± 0.050",
        "0.800 ± 0.050†",
        "**0.900 ± 0.050**",
    ]
    # sd of (0.79, 0.80, 0.83) = 0.02082 -> 0.052
    assert _row(markdown, LLM) == [
        "**0.620 ± 0.050**",
        "**0.810 ± 0.025**",
        "**0.807 ± 0.052**",
        "0.810 ± 0.025",
    ]
    # Families are grouped: classical first (majority leading), then llm_icl.
    lines = markdown.splitlines()[2:]
    assert [line.split("|")[1].strip() for line in lines] == ["classical", "", "", "llm_icl"]


def test_table_columns_and_superseded_record(runs: pd.DataFrame) -> None:
    table = summary_table(runs[runs["dataset"] == "beta"], "roc_auc")
    cell = table[(table["method"] == "lightgbm") & (table["n_train"] == 16)].iloc[0]
    # the older 0.99 record of seed 0 is ignored: (0.55, 0.56, 0.57)
    assert cell["mean"] == pytest.approx(0.56)
    assert cell["std"] == pytest.approx(0.01)
    assert cell["seeds"] == 3
    assert cell["ci"] == pytest.approx(4.302653 * 0.01 / np.sqrt(3), abs=1e-6)


def test_lower_is_better_metric_bolds_the_minimum(runs: pd.DataFrame) -> None:
    table = summary_table(runs[runs["dataset"] == "beta"], "log_loss")  # = 1 - AUC here
    markdown = to_markdown(table)
    assert _row(markdown, LLM)[0] == "**0.290 ± 0.025**"  # n=16: 1 - 0.71
    assert _row(markdown, "lightgbm")[1] == "**0.240 ± 0.025**"  # n=64: 1 - 0.76


def test_untestable_methods_are_not_called_worse(tmp_path: Path) -> None:
    """The best has one seed: nothing can be shown worse than it, so nothing is unmarked."""
    results = ResultsStore(tmp_path)
    results.save(record("beta", "llm_icl", 16, 0, 0.9, requests=100, llm_seconds=1.0))
    for seed, auc in zip(SEEDS, (0.70, 0.71, 0.72), strict=True):
        results.save(record("beta", "logreg", 16, seed, auc, cpu_s=0.05))
    table = summary_table(load_results(tmp_path), "roc_auc")
    assert _row(to_markdown(table), "logreg") == ["0.710 ± 0.025†"]
    assert _row(to_markdown(table), LLM) == ["**0.900**"]  # one seed: no interval
    assert np.isnan(table.loc[table["method"] == "logreg", "p_holm"].iloc[0])


def test_latex_is_booktabs_with_escaped_names(runs: pd.DataFrame) -> None:
    table = summary_table(runs[runs["dataset"] == "alpha"], "roc_auc")
    latex = to_latex(table, "alpha: AUC 100% of_it", "tab:alpha")
    for needle in (r"\toprule", r"\midrule", r"\bottomrule", r"\label{tab:alpha}"):
        assert needle in latex
    assert r"100\% of\_it" in latex
    assert r"\multicolumn{5}{l}{\textit{llm\_icl}} \\" in latex
    assert r"\quad llm\_icl (gpt-4o-mini) & \textbf{0.620 $\pm$ 0.050}" in latex
    assert r"0.800 $\pm$ 0.050$^\dagger$" in latex
    assert latex.isascii()  # pdflatex without unicode packages: ±, †, α, dashes spelled out


def test_html_table_marks_best_and_tied(runs: pd.DataFrame) -> None:
    html = summary_grid(summary_table(runs[runs["dataset"] == "alpha"], "roc_auc")).to_html()
    assert '<td class="best"><strong>0.900 ± 0.050</strong></td>' in html
    assert '<td class="tied">0.800 ± 0.050<sup>†</sup></td>' in html
    assert '<tr class="group"><th colspan="5">llm_icl</th></tr>' in html


def test_in_context_points_sit_at_their_shot_count(runs: pd.DataFrame) -> None:
    beta = runs[runs["dataset"] == "beta"].copy()
    capped = (beta["method"] == "llm_icl") & (beta["n_train"] == 64)
    beta.loc[capped, "details"] = pd.Series(
        [{"shots": 50}] * int(capped.sum()), index=beta.index[capped]
    )
    table = shot_positions(summary_table(beta, "roc_auc"), beta)
    x = table.set_index(["method", "n_train"])["x"]
    assert x[(LLM, 64)] == 50.0  # max_shots capped k below n_train
    assert x[(LLM, 16)] == 16.0 and x[("lightgbm", 64)] == 64.0


# --- ranks ----------------------------------------------------------------------------------


def test_ranks_and_win_rates(runs: pd.DataFrame) -> None:
    ranks = rank_table(runs, {"alpha": "roc_auc", "beta": "roc_auc"})
    got = {
        (r.method, r.n_train): (r.mean_rank, round(r.win_rate, 4), r.datasets)
        for r in ranks.itertuples()
        if r.n_train in (16, 64)
    }
    # n=16, both datasets: llm 1st, logreg 2nd, lightgbm 3rd, majority 4th.
    assert got[(LLM, 16)] == (1.0, 1.0, 2)
    assert got[("logreg", 16)] == (2.0, round(4 / 6, 4), 2)
    assert got[("lightgbm", 16)] == (3.0, round(2 / 6, 4), 2)
    assert got[("majority", 16)] == (4.0, 0.0, 2)
    # n=64: alpha llm > lightgbm > logreg; beta lightgbm > llm > logreg.
    assert got[(LLM, 64)] == (1.5, round(5 / 6, 4), 2)
    assert got[("lightgbm", 64)] == (1.5, round(5 / 6, 4), 2)
    assert got[("logreg", 64)] == (3.0, round(2 / 6, 4), 2)
    best = ranks[ranks["best"]]
    assert sorted(zip(best["n_train"], best["method"], strict=True)) == [
        (0, LLM),
        (16, LLM),
        (64, "lightgbm"),
        (64, LLM),
        (256, "lightgbm"),
    ]
    # n=256 exists on alpha only: 3 seed pairs, Wilcoxon p >= 0.25, so every method is †.
    at_256 = ranks[(ranks["n_train"] == 256) & ~ranks["best"]]
    assert at_256["tied"].all() and (at_256["pairs"] == 3).all()
    markdown = rank_grid(ranks).to_markdown()
    # n=16: 6 pairs, all in the LLM's favour: exact p = 2 / 2^6 = 0.031, but Holm over the 3
    # comparisons makes it at least 0.094: not significant, so lightgbm is marked †.
    assert _row(markdown, "lightgbm") == [
        "-",
        "3.00 / 33%†",
        "**1.50 / 83%**",
        "**1.00 / 100%**",
    ]
    assert _row(markdown, LLM)[0] == "**1.00 / -**"  # alone at n=0: nothing to win against


# --- cost and Pareto ------------------------------------------------------------------------


def test_cost_per_1k_scales_cached_answers(runs: pd.DataFrame) -> None:
    llm = runs[(runs["dataset"] == "alpha") & (runs["method"] == "llm_icl")]
    at_256 = llm[llm["n_train"] == 256].set_index("seed")
    # $0.6 and 40 s for 200 rows -> $3 and 200 s per 1,000; the half-cached seed scales by 2.
    assert at_256.loc[0, "marginal_usd_per_1k"] == pytest.approx(3.0)
    assert at_256.loc[1, "marginal_usd_per_1k"] == pytest.approx(3.0)
    assert at_256.loc[1, "marginal_seconds_per_1k"] == pytest.approx(200.0)
    assert np.isnan(at_256.loc[2, "marginal_usd_per_1k"])
    assert np.isnan(at_256.loc[2, "marginal_seconds_per_1k"])
    # a quarter of lightgbm's CPU predicts: 0.2 / 0.3 s x 0.25 per 100 rows
    lgbm = runs[(runs["dataset"] == "beta") & (runs["method"] == "lightgbm")]
    assert sorted(lgbm["marginal_seconds_per_1k"].round(6)) == [0.5, 0.5, 0.5, 0.75, 0.75, 0.75]
    assert sorted(lgbm["one_off_seconds"].round(6)) == [0.15, 0.15, 0.15, 0.225, 0.225, 0.225]


def test_n_test_falls_back_to_the_predictions_file(tmp_path: Path) -> None:
    rec = record("beta", "logreg", 16, 0, 0.6, cpu_s=0.2)
    del rec["n_test"]
    predictions = pd.DataFrame({"row": range(50), "y_true": ["no"] * 50})
    ResultsStore(tmp_path).save(rec, predictions)
    frame = cost_per_1k(prepare_runs(load_results(tmp_path)).runs, tmp_path)
    # 0.05 s of predicting / 50 rows
    assert frame["marginal_seconds_per_1k"].tolist() == [pytest.approx(1.0)]


def test_pareto_fronts(store: Path) -> None:
    sections = {s.name: s for s in collect(store).datasets}
    beta = sections["beta"]
    assert beta.unit == "seconds"
    front = beta.pareto
    # majority@16 (0.01 s), logreg@16 (0.5 s, 0.62), logreg@64 (0.6 s, 0.72),
    # lightgbm@64 (3 s, 0.76); llm (100 s) is beaten by lightgbm@64 at both sizes.
    assert list(zip(front["label"], front["n_train"], strict=True)) == [
        ("majority", 16),
        ("logreg", 16),
        ("logreg", 64),
        ("lightgbm", 64),
    ]
    alpha = sections["alpha"]
    assert alpha.unit == "usd"  # the LLM paid fees; classical runs cost $0
    assert list(zip(alpha.pareto["label"], alpha.pareto["n_train"], strict=True)) == [
        ("lightgbm", 256)
    ]


# --- run summary ----------------------------------------------------------------------------


def test_run_summary(store: Path) -> None:
    prepared = prepare_runs(load_results(store))
    summary = summarize_runs(prepared.all_runs, prepared.superseded)
    # ok: alpha 3 classical x 9 + llm 12, beta 4 x 6, the older record; skipped: n=0 classical
    assert summary.counts == {"failed": 1, "ok": 64, "skipped": 9}
    assert summary.superseded == 1
    assert summary.skipped[0] == (
        "method 'lightgbm' needs training rows (n_train=0)",
        3,
        "alpha/lightgbm",
    )
    assert summary.failed == [
        {
            "dataset": "alpha",
            "method": "xgboost",
            "n_train": 16,
            "seed": 0,
            "status": "failed",
            "error": "ValueError: boom",
        }
    ]
    totals = summary.totals
    # alpha: 12 LLM runs, 200 requests each but n=256 seed 1 (100) and seed 2 (0); beta: 6 x 100
    assert totals["requests"] == 10 * 200 + 100 + 6 * 100
    assert totals["cache_hits"] == 300
    assert totals["prompt_tokens"] == 17 * 1000
    assert totals["usd"] == pytest.approx(10 * 0.6 + 0.3)


def test_report_without_finished_runs_lists_what_went_wrong(tmp_path: Path) -> None:
    results = ResultsStore(tmp_path)
    results.save(record("beta", "logreg", 16, 0, None, status="failed", error="OSError: disk"))
    results.save(record("beta", "llm_icl", 16, 0, None, status="skipped", error="too long"))
    markdown = (write_report(tmp_path) / "report.md").read_text()
    assert "Runs: 2 (1 failed, 1 skipped)." in markdown
    assert "No successful runs." in markdown
    assert "| beta | logreg | 16 | 0 | failed | OSError: disk |" in markdown
    assert "| 1 | too long | beta/llm_icl |" in markdown


# --- the written report ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def report_dir(store: Path) -> Path:
    return write_report(store)


def test_report_files(report_dir: Path) -> None:
    names = {p.name for p in report_dir.iterdir()}
    expected = {"report.md", "report.html", "ranks.md", "ranks.tex"}
    for dataset in ("alpha", "beta"):
        expected |= {f"{dataset}.md", f"{dataset}.tex", f"{dataset}.png", f"{dataset}_cost.png"}
    assert expected <= names
    for png in ("alpha.png", "beta_cost.png"):
        assert (report_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (report_dir / "report.md").read_text()
    assert markdown.index("## The answer") < markdown.index("## alpha")
    assert markdown.index("## beta") < markdown.index("## Run summary")
    for needle in (
        "## The answer",
        "- **alpha.** With a margin of 0.02 AUC, the LLM is good enough at 64 rows",
        "- **Across 2 datasets (roc_auc).** With a margin of 0.02 AUC, the LLM is good enough",
        "## Verdict across datasets",
        "classical models are better from 256 rows on",
        "### Cost to deploy",
        "| llm_icl (gpt-4o-mini) | 256 | 0.810 | $0 (0 s) | $3.0 (200 s) | $30,000 |",
        "| logreg | 64 | 0.720 | 0.045 s | 0.15 s | 0.42 compute-h |",
        "Runs: 74 (1 failed, 64 ok, 9 skipped).",
        "| 3 | method 'lightgbm' needs training rows (n_train=0) | alpha/lightgbm |",
        "| alpha | xgboost | 16 | 0 | failed | ValueError: boom |",
        "- lightgbm @256: $0 per 1,000 predictions, 0.900 AUC",
        "- logreg @64: 0.15 s per 1,000 predictions, 0.720 AUC",
        "300 answers from the request cache",
        "1 older run record(s) of a cell",
        "paired t-test",
        "Wilcoxon",
    ):
        assert needle in markdown, needle


def test_html_is_self_contained(report_dir: Path) -> None:
    page = (report_dir / "report.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"#][^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in page and "https://" not in page
    assert page.count("<img ") == 4  # a learning curve and a cost plot per dataset
    for needle in ("Run summary", "Verdict across datasets", "alpha", "beta", "ValueError: boom"):
        assert needle in page


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if found := shutil.which(name):
            return found
    return None


@pytest.mark.e2e
def test_html_renders_in_headless_chromium(report_dir: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium)")
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",  # CI containers often run as root, where the sandbox refuses
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=1200,2000",
            (report_dir / "report.html").resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2000, 1200)
    colours = np.unique((pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 200  # text, tables and figures, not a blank or error page
    not_white = (pixels[..., :3] < 0.95).any(axis=-1).mean()
    assert not_white > 0.05
