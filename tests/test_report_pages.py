"""report.md and report.html say the same thing: the same sentences and the same numbers.

Both are drawn from one list of blocks (bench/report/doc.py), so nothing a reader of one sees
may be missing from the other. Checked on a real sweep (bench-run's records, predictions and
leak audit, plus a memorisation file, a skipped run and a replaced record) and on a synthetic
store that reaches every other section (LLM verdicts, deploy costs and break-even, ranks across
datasets, failed runs, prompt searches, explanations).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from synthetic_store import record, synthetic_records

from bench.config import compose_config
from bench.data.audit import AuditReport, FeatureAudit, audit_file
from bench.report import page, write_report
from bench.report.audits import audit_lines
from bench.report.content import DatasetSection
from bench.report.doc import Block, Heading, Paragraph
from bench.results import ResultsStore
from bench.runner import run_job

NUMBER = re.compile(r"[-+−]?\d[\d,]*(?:\.\d+)?")


def html_lines(page: str) -> list[str]:
    """The visible text of the page, a line per block and per table cell (no head, no nav:
    the navigation bar repeats the headings)."""
    page = re.sub(r"<head>.*?</head>|<nav>.*?</nav>", "", page, flags=re.S)
    page = re.sub(
        r"<(?:/?(?:p|li|h\d|tr|div|section|pre|figure|ul|table)|t[dh])\b[^>]*>", "\n", page
    )
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    return [line.strip() for line in text.splitlines() if line.strip()]


def markdown_lines(markdown: str) -> list[str]:
    """The visible text of the Markdown file, a line per paragraph, item and table cell."""
    lines = []
    for line in markdown.splitlines():
        line = line.strip()
        if not line or line.startswith(("```", "![")) or re.fullmatch(r"\|[-:|]+\|", line):
            continue
        line = re.sub(r"^#+ |^- ", "", line).replace("**", "").replace("`", "")
        if line.startswith("|"):  # a table row: one line per cell, as in HTML
            cells = re.split(r"(?<!\\)\|", line.strip("|"))
            lines += [c.strip().replace(r"\|", "|") for c in cells if c.strip()]
        else:
            lines.append(line)
    return lines


def sentences(lines: list[str]) -> set[str]:
    """Prose (three words or more), split into sentences, spaces normalised."""
    found = set()
    for line in lines:
        for sentence in re.split(r"(?<=[.:;])\s+", line):
            sentence = " ".join(sentence.split())
            if len(sentence.split()) >= 3:
                found.add(sentence)
    return found


def numbers(lines: list[str]) -> set[str]:
    return {n.lstrip("+−-") for line in lines for n in NUMBER.findall(line)}


def assert_same_content(out: Path) -> None:
    md = markdown_lines((out / "report.md").read_text())
    page = html_lines((out / "report.html").read_text())
    only_md, only_html = sentences(md) - sentences(page), sentences(page) - sentences(md)
    assert not only_md and not only_html, (sorted(only_md), sorted(only_html))
    assert numbers(md) == numbers(page), numbers(md) ^ numbers(page)
    assert len(numbers(md)) > 20 and len(sentences(md)) > 20  # the check compared something


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real sweep on callcenter; its leak audit is written by bench-run itself."""
    path = tmp_path_factory.mktemp("sweep")
    common = ["dataset=callcenter", "seeds=[0,1]", f"results_dir={path}"]
    for method in ("majority", "logreg"):
        run_job(compose_config([*common, f"method={method}", "n_train=[0,16,64]"]))
    # the same cells with other settings: the newer records replace these in the tables
    run_job(compose_config([*common, "method=logreg", "method.params.C=0.5", "n_train=[16]"]))
    run_job(compose_config([*common, "method=logreg", "n_train=[16]", "split.test_size=0.3"]))
    memcheck = {
        "kind": "memcheck",
        "dataset": "callcenter",
        "llm": "local_gemma3_270m",
        "model": "gemma-3-270m-q4_k_m",
        "verdict": "no evidence of memorisation",
    }
    (path / "audits" / "memcheck__callcenter__local_gemma3_270m.json").write_text(
        json.dumps(memcheck)
    )
    return path


def test_a_real_sweep_says_the_same_in_markdown_and_html(sweep: Path) -> None:
    out = write_report(sweep)
    markdown = (out / "report.md").read_text()
    for needle in (
        "### Validity audits",
        "memorisation (local_gemma3_270m, gemma-3-270m-q4_k_m): no evidence of memorisation",
        "### Skipped runs by reason",
        "older run record(s) of a cell",
        "### Cost to deploy",
    ):
        assert needle in markdown, needle
    assert_same_content(out)


def _llm_extras() -> list[dict]:
    """Prompt searches and explanations on beta: the two sections no other store reaches."""
    records = []
    for seed in (0, 1, 2):
        rec = record("beta", "llm_icl_tuned", 16, seed, 0.7 + seed / 100)
        rec["details"] = {
            "search": {
                "metric": "roc_auc",
                "chosen": "explicit_instruction",
                "validation_score": 0.8,
                "instruction": "Predict `resolved`.\nAnswer yes or no.",
                "candidates": [{"name": "configured", "llm_calls": 16}],
            },
            "explanations": {
                "rows": 3,
                "naming_a_column": 2,
                "named_effect": [0.2, 0.3 + seed / 10],
                "unnamed_effect": [0.1, 0.05],
                "named_sets": {"wait, queue": 2},
                "examples": [
                    {"row": 7, "answer": "yes", "reason": "Short wait.", "named": ["wait"]}
                ],
            },
        }
        records.append(rec)
    return records


def test_every_section_says_the_same_in_markdown_and_html(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    for rec in [*synthetic_records(), *_llm_extras()]:
        store.save(rec)
    out = write_report(tmp_path)
    markdown = (out / "report.md").read_text()
    for needle in (
        "### Prompt search",
        "Chosen instruction of llm_icl_tuned",
        "### Explanations",
        "### Cost to deploy",
        "## Mean rank and win rate across datasets",
        "### Runs that did not finish",
    ):
        assert needle in markdown, needle
    assert_same_content(out)


def test_the_leak_audit_is_read_through_its_typed_reader(tmp_path: Path) -> None:
    """A stored audit (AuditReport.to_json) comes back as the report's lines; a file that is
    JSON but not an audit is named as unreadable instead of half read."""
    row = FeatureAudit("handle_time_s", "numeric", 0.78, 0.55, 0.02, True, False)
    flagged = FeatureAudit(
        "quality_score", "numeric", 0.995, 0.56, 0.02, False, True, ("alone predicts",)
    )
    report = AuditReport("x", "resolved", "h", "f", 100, 100, 40, 1.0, (row, flagged))
    path = audit_file(tmp_path, "x")
    path.parent.mkdir(parents=True)
    path.write_text(report.to_json())
    assert audit_lines(tmp_path, "x") == [
        "leak audit: quality_score is used as a feature and is flagged: alone predicts "
        "(AUC alone 0.995, chance up to 0.560)",
        "leak audit: if these are known only after the outcome, drop them: "
        "dataset.leak_columns=[handle_time_s,quality_score]",
        "leak audit: handle_time_s is a declared leak column, dropped; alone it scores AUC 0.780",
    ]
    path.write_text(json.dumps({"kind": "leaks", "dataset": "x", "rows": [{"name": "a"}]}))
    assert audit_lines(tmp_path, "x")[0].startswith("audit file leaks__x.json could not be read")


def test_a_new_section_is_one_function_in_the_page_order(
    sweep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def extra(section: DatasetSection) -> list[Block]:
        return [Heading("Extra check", 3), Paragraph(f"{section.name} passed 42 checks.")]

    monkeypatch.setattr(page, "DATASET", [*page.DATASET, extra])
    out = write_report(sweep)
    assert "### Extra check\n\ncallcenter passed 42 checks." in (out / "report.md").read_text()
    assert (
        "<h3>Extra check</h3><p>callcenter passed 42 checks.</p>"
        in (out / "report.html").read_text()
    )
