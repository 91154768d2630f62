"""The leak audit (bench/data/audit.py) on real data, through the real CLIs.

The planted-leak table is the call-center generator's output plus two columns: one whose
name says it is measured after the outcome (`call_duration_s`, shifted by the outcome but no
better a predictor than `call_reason`) and one with a harmless name that is nearly the label
(`quality_score`). Each must be flagged for its own reason, and only for it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig

from bench.cli import data_main
from bench.config import compose_config, config_names
from bench.data.audit import (
    AUC_FLAG,
    AuditReport,
    audit_file,
    audit_task,
    cached_audit,
    score_features,
)
from bench.data.callcenter import generate_callcenter
from bench.data.dataset import load_task
from bench.data.splits import make_split
from bench.report.audits import audit_lines

BIN = Path(sys.executable).parent
LEAKY = "leaky_calls"
CALLCENTER_FEATURES = (
    "call_reason",
    "channel",
    "queue_wait_s",
    "agent_tenure_months",
    "previous_contacts_30d",
    "hour_of_day",
    "customer_tenure_months",
)


@pytest.fixture(scope="module")
def leaky_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = generate_callcenter(rows=1500, seed=1)
    rng = np.random.default_rng(1)
    resolved = frame["resolved"].eq("yes").to_numpy()
    rows = len(frame)
    # Logged when the call ends: longer when the issue was not resolved.
    frame["call_duration_s"] = np.round(rng.gamma(3.0, 100.0, rows) * np.where(resolved, 0.8, 1.5))
    # A QA grade given after the call, nearly the label; nothing in its name says so.
    frame["quality_score"] = np.round(np.where(resolved, 80.0, 20.0) + rng.normal(0, 10, rows), 1)
    path = tmp_path_factory.mktemp("leaky") / "calls.csv"
    frame.to_csv(path, index=False)
    return path


def leaky_overrides(path: Path) -> list[str]:
    """The callcenter card pointed at the CSV: same target, features and declared leak."""
    return [
        "dataset=callcenter",
        f"dataset.name={LEAKY}",
        "dataset.source=csv",
        "~dataset.params.rows",
        "~dataset.params.seed",
        "~dataset.params.noise",
        f"+dataset.params.path={path}",
    ]


@pytest.fixture(scope="module")
def leaky_config(leaky_csv: Path) -> DictConfig:
    return compose_config(leaky_overrides(leaky_csv))


@pytest.fixture(scope="module")
def leaky_report(leaky_config: DictConfig) -> AuditReport:
    return audit_task(leaky_config.dataset, leaky_config.split)


def cli(tool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / tool), *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_callcenter_cli_flags_nothing_and_shows_the_declared_leak(tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    done = cli("bench-data", "audit", "callcenter", "--json", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no column flagged (declared: handle_time_s)" in done.stdout
    row = next(line for line in done.stdout.splitlines() if line.startswith("handle_time_s"))
    assert "declared leak (dropped)" in row
    assert "FLAGGED" not in done.stdout
    saved = json.loads(out.read_text())
    assert saved["suggested_leak_columns"] == []
    assert saved["declared_leak_columns"] == ["handle_time_s"]


def test_an_unknown_dataset_gets_the_closest_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        data_main(["audit", "callcentr"])
    assert exit_info.value.code == 2
    assert "Did you mean 'callcenter'?" in capsys.readouterr().err


@pytest.mark.parametrize("name", config_names("dataset"))
def test_every_bundled_dataset_audits_in_seconds_and_suggests_nothing(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.perf_counter()
    data_main(["audit", name])
    seconds = time.perf_counter() - started
    text = capsys.readouterr().out
    assert text.startswith(f"leak audit of {name}:")
    # The bundled cards declare their leaks; an honest strong column (breast_cancer's worst
    # perimeter, 0.976) stays below the AUC threshold.
    assert "no column flagged" in text, text
    assert seconds < 20, f"{name}: {seconds:.1f} s"  # about 0.2-1 s each on 2 cores


def test_planted_leaks_are_flagged_each_for_its_own_reason(leaky_report: AuditReport) -> None:
    rows = {row.name: row for row in leaky_report.rows}
    duration, quality = rows["call_duration_s"], rows["quality_score"]
    assert duration.reasons == ("name ('duration') suggests it is measured after the outcome",)
    assert duration.auc < AUC_FLAG  # a shifted column scores like an honest predictor
    assert duration.auc > duration.chance_p95
    assert len(quality.reasons) == 1 and "alone predicts the target" in quality.reasons[0]
    assert quality.auc >= AUC_FLAG and quality.p_value <= 0.05
    assert leaky_report.suggested_leak_columns == ["call_duration_s", "quality_score"]
    assert leaky_report.fix() == "[handle_time_s,call_duration_s,quality_score]"
    assert rows["handle_time_s"].status == "declared leak (dropped)"
    assert all(rows[name].status == "ok" for name in CALLCENTER_FEATURES)
    assert "suggest: leak_columns: [handle_time_s,call_duration_s,quality_score]" in (
        leaky_report.table()
    )


def test_the_audit_reads_training_rows_only(leaky_config: DictConfig) -> None:
    kept = leaky_config.dataset.copy()
    kept.keep_leak_columns = True
    task = load_task(kept)
    split = make_split(
        task.y,
        task.name,
        seed=0,
        test_size=leaky_config.split.test_size,
        max_test_rows=leaky_config.split.max_test_rows,
    )
    pool = np.sort(split.pool_order)
    before = score_features(task, pool, n_permutations=20)
    test = split.test_rows
    flipped = task.y.copy()
    flipped.iloc[test] = np.where(task.y.iloc[test] == "yes", "no", "yes")
    X = task.X.copy()
    X.loc[test, "quality_score"] = -1e6  # test values are not read either (bins, ranks)
    X.loc[test, "call_reason"] = "never seen"
    after = score_features(replace(task, X=X, y=flipped), pool, n_permutations=20)
    assert before == after


def test_a_sweep_audits_once_and_reuses_the_file(leaky_config: DictConfig, tmp_path: Path) -> None:
    task = load_task(leaky_config.dataset)
    first = cached_audit(leaky_config.dataset, leaky_config.split, tmp_path, task.fingerprint)
    path = audit_file(tmp_path, LEAKY)
    written = path.stat().st_mtime_ns
    again = cached_audit(leaky_config.dataset, leaky_config.split, tmp_path, task.fingerprint)
    assert again == first and path.stat().st_mtime_ns == written
    declared = leaky_config.dataset.copy()
    declared.leak_columns = ["handle_time_s", "call_duration_s", "quality_score"]
    fixed = cached_audit(declared, leaky_config.split, tmp_path, "another fingerprint")
    assert fixed.suggested_leak_columns == []
    assert AuditReport.from_json(path.read_text()) == fixed


@pytest.mark.e2e
def test_bench_run_warns_once_per_job_and_the_report_lists_the_flags(
    leaky_csv: Path, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    common = ["seeds=[0]", "n_train=[16]", f"results_dir={results}", "report=false"]
    sweep = ["-m", *leaky_overrides(leaky_csv), "method=majority,logreg", *common]
    leaky = cli("bench-run", *sweep, cwd=tmp_path)
    assert leaky.returncode == 0, leaky.stderr[-3000:]
    log = leaky.stdout + leaky.stderr
    warnings = [line for line in log.splitlines() if "possible leak" in line]
    assert len(warnings) == 2, log  # one per job (dataset x method) ...
    assert log.count(f"leak audit of {LEAKY}:") == 1  # ... from one audit, reused
    assert "[leaky_calls | majority]" in warnings[0] and "[leaky_calls | logreg]" in warnings[1]
    assert "call_duration_s (name ('duration')" in warnings[0]
    assert "quality_score (alone predicts the target" in warnings[0]
    assert "dataset.leak_columns=[handle_time_s,call_duration_s,quality_score]" in warnings[0]

    honest = cli("bench-run", "dataset=callcenter", "method=majority", *common, cwd=tmp_path)
    assert honest.returncode == 0, honest.stderr[-3000:]
    assert "possible leak" not in honest.stdout + honest.stderr
    # Another engineer's memorisation check lands in the same folder; one line per file.
    memcheck = {
        "kind": "memcheck",
        "dataset": "callcenter",
        "llm": "local_gemma3_270m",
        "model": "gemma-3-270m-q4_k_m",
        "verdict": "no sign of memorisation",
        "memorised": False,
        "tests": {"header": {}, "row": {}, "feature": {}},
    }
    (results / "audits" / "memcheck__callcenter__local_gemma3_270m.json").write_text(
        json.dumps(memcheck)
    )

    report = cli("bench-report", str(results), cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    text = (results / "report" / "report.md").read_text()
    leaky_part, honest_part = section(text, LEAKY), section(text, "callcenter")
    assert "### Validity audits" in leaky_part
    assert "call_duration_s is used as a feature and is flagged" in leaky_part
    assert "quality_score is used as a feature and is flagged" in leaky_part
    assert "dataset.leak_columns=[handle_time_s,call_duration_s,quality_score]" in leaky_part
    assert "leak audit: no column flagged among 7 feature(s)" in honest_part
    assert "handle_time_s is a declared leak column, dropped" in honest_part
    assert (
        "memorisation (local_gemma3_270m, gemma-3-270m-q4_k_m): no sign of memorisation"
        in honest_part
    )
    page = (results / "report" / "report.html").read_text()
    assert "<h3>Validity audits</h3>" in page and "call_duration_s is used as a feature" in page


def test_an_unreadable_audit_file_is_named_in_the_report(tmp_path: Path) -> None:
    (tmp_path / "audits").mkdir()
    (tmp_path / "audits" / "leaks__x.json").write_text("{not json")
    assert audit_lines(tmp_path, "x")[0].startswith("audit file leaks__x.json could not be read")
    assert audit_lines(tmp_path, "y") == []


def section(markdown: str, dataset: str) -> str:
    """A dataset's part of report.md: from its heading to the next level-2 heading."""
    start = markdown.index(f"\n## {dataset}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end > 0 else None]
