"""The README's "Add a method" example, run as written: one module, one YAML, a real bench-run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.paths import CONF_DIR, PROJECT_ROOT
from bench.results import ResultsStore

pytestmark = pytest.mark.e2e

README = PROJECT_ROOT / "README.md"
BIN = Path(sys.executable).parent


def readme_block(after: str, language: str) -> str:
    """The first ```language block of the README that follows the text `after`."""
    text = README.read_text()
    start = text.index(after)
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(text, start)
    assert match, f"no ```{language} block after {after!r} in the README"
    return match.group(1)


def test_the_readme_method_runs_zero_shot_and_reports_its_details(tmp_path: Path) -> None:
    package = tmp_path / "my_methods"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "prior.py").write_text(readme_block("Save it as `my_methods/prior.py`", "python"))
    config = CONF_DIR / "method" / "smoothed_prior.yaml"
    if config.exists():
        pytest.skip(f"{config} exists already; not overwriting a user's file")
    config.write_text(readme_block("conf/method/smoothed_prior.yaml", "yaml"))
    results = tmp_path / "results"
    try:
        done = subprocess.run(
            [
                str(BIN / "bench-run"),
                "method=smoothed_prior",
                "dataset=callcenter",
                "n_train=[0,16]",
                "seeds=[0]",
                f"results_dir={results}",
                "report=false",
            ],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        config.unlink()
    assert done.returncode == 0, done.stderr[-3000:]
    records = {r["n_train"]: r for r in ResultsStore(results).records()}
    assert set(records) == {0, 16}
    for n, record in records.items():
        assert record["status"] == "ok", record["error"]
        assert record["tags"]["zero_shot"] is True
        prior = record["details"]["prior"]
        assert set(prior) == set(record["class_labels"])
        assert sum(prior.values()) == pytest.approx(1.0, abs=1e-3)
        if n == 0:  # no rows: add-one smoothing gives the uniform prior
            assert list(prior.values()) == pytest.approx([1 / len(prior)] * len(prior), abs=1e-3)
