"""Skipped runs in the run summary: reasons that differ only in their numbers are one reason."""

from __future__ import annotations

import pandas as pd

from bench.report.summary import merge_reasons, reason_key, summarize_runs


def _too_long(tokens: str, llm: str = "qwen2.5-1.5b") -> str:
    return (
        f"prompt of {tokens} tokens exceeds the context window of 8,192 tokens of llm '{llm}' "
        "(llm.n_ctx / llm.context_length); use fewer shots or a longer-context model"
    )


def _runs(skips: list[tuple[str, str, str]]) -> pd.DataFrame:
    """Skipped records (dataset, method, error), one seed each, plus one ok run."""
    rows = [
        {"dataset": d, "method": m, "n_train": 256, "seed": i, "status": "skipped", "error": e}
        for i, (d, m, e) in enumerate(skips)
    ]
    rows.append({"dataset": "alpha", "method": "logreg", "n_train": 16, "seed": 0, "status": "ok"})
    return pd.DataFrame(rows)


def test_reasons_differing_only_in_numbers_are_one_row_with_ranges() -> None:
    tokens = ["9,315", "12,004", "35,120", "9,315", "20,500", "10,001", "11,111", "30,000"]
    skips = [("alpha", "llm_icl", _too_long(t)) for t in tokens[:5]]
    skips += [("beta", "llm_distill", _too_long(t)) for t in tokens[5:]]
    skips += [("alpha", "logreg", "method 'logreg' needs training rows (n_train=0)")]
    summary = summarize_runs(_runs(skips))
    assert summary.counts == {"ok": 1, "skipped": 9}
    assert summary.skipped == [
        (_too_long("9,315–35,120"), 8, "alpha/llm_icl, beta/llm_distill"),
        ("method 'logreg' needs training rows (n_train=0)", 1, "alpha/logreg"),
    ]


def test_different_reasons_stay_apart_sorted_by_runs() -> None:
    skips = [
        ("alpha", "llm_icl", _too_long("9,315", llm="qwen2.5-1.5b")),
        # the digits in an LLM's name are part of the name, not a number that varies
        ("alpha", "llm_icl", _too_long("9,400", llm="qwen2.5-7b")),
        ("alpha", "llm_icl", _too_long("9,500", llm="qwen2.5-7b")),
        ("alpha", "lightgbm", "method 'lightgbm' needs training rows (n_train=0)"),
        ("alpha", "logreg", "method 'logreg' needs training rows (n_train=0)"),
        ("beta", "logreg", "method 'logreg' needs training rows (n_train=0)"),
        ("beta", "logreg", None),
    ]
    summary = summarize_runs(_runs(skips))
    assert summary.skipped == [
        # most runs first; a tie in the reason's alphabetical order
        ("method 'logreg' needs training rows (n_train=0)", 2, "alpha/logreg, beta/logreg"),
        (_too_long("9,400–9,500", llm="qwen2.5-7b"), 2, "alpha/llm_icl"),
        ("(no reason recorded)", 1, "beta/logreg"),
        ("method 'lightgbm' needs training rows (n_train=0)", 1, "alpha/lightgbm"),
        (_too_long("9,315", llm="qwen2.5-1.5b"), 1, "alpha/llm_icl"),
    ]


def test_reason_key_and_merge() -> None:
    assert reason_key("took 18.9 s for 200 rows at 0.5 of qwen2.5-0.5b") == (
        "took # s for # rows at # of qwen2.5-0.5b"
    )
    # a number the same in every reason stays as it is; the others become their range
    assert merge_reasons(["n=16, k=8.", "n=16, k=64.", "n=16, k=0.5."]) == "n=16, k=0.5–64."
    # one value written two ways is one value
    assert merge_reasons(["window 8192", "window 8,192"]) == "window 8192"
