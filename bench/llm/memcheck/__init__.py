"""Memorisation tests: has an LLM seen a dataset's file verbatim?

In the spirit of `tabmemcheck` (Bordt et al., "Elephants never forget", 2024), three completion
tests run on the dataset's *raw CSV text*, the file as it lies on the web (the Rdatasets CSV,
the CSV scikit-learn bundles, the synthetic table written as CSV), not the harness's processed
frame:

* **header**: the start of the file, cut after a comma near the middle of the header line and of
  a few early rows; does the model continue it verbatim, through the whole next line?
* **row**: a contiguous block of real rows at a seeded random place, each given as the file up
  to the middle of that row (earlier rows of the block stay in the prompt, so consecutive
  prompts share a prefix a local model or a serving engine reuses); how many rows does the model
  complete exactly (the rest of the row, at most `max_values` values), and what share of those
  values, against a baseline drawing each value from its column's marginal distribution?
* **feature**: the rare-valued column (most distinct values, row counters and ids excluded)
  moved to the end of every line; given the rest of a row, after a few example rows, does the
  model name that row's value exactly, more often than the marginal baseline would?

Every request goes through the project's backends (`make_backend`: embedded, self-hosted and
hosted models alike) with greedy decoding, so the request cache makes a rerun free. A tiny model
that fails these tests is weak evidence of absence: it may have seen the file and not kept it.

>>> from bench.config import compose_config
>>> cfg = compose_config(["dataset=callcenter", "llm=local_gemma3_270m"])
>>> result = run_memcheck(cfg.dataset, cfg.llm, MemcheckSettings(rows=5))  # doctest: +SKIP
>>> result.verdict  # doctest: +SKIP
'no evidence of memorisation'
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

# Names imported with `noqa: F401` are not in `__all__` but stay importable from here, as when
# the package was one module (the tests import `_fields` and `_identifier`).
from bench.llm.memcheck.completion import (
    BUDGET_MARGIN,  # noqa: F401
    CHAT_SYSTEM,  # noqa: F401
    FeatureTest,
    HeaderTest,
    MemcheckSettings,
    RowTest,
    _Asker,
    _identifier,  # noqa: F401
    feature_test,
    header_test,
    row_test,
)
from bench.llm.memcheck.raw import RawTable, _fields, raw_table  # noqa: F401
from bench.llm.memcheck.result import (
    BASELINE_QUANTILE,  # noqa: F401
    MIN_EXACT,  # noqa: F401
    NO_EVIDENCE,
    RARE_SHARE,  # noqa: F401
    TINY_MODEL_NOTE,
    VERDICT_RULE,
    MemcheckResult,
)
from bench.llm.protocol import LLMBackend
from bench.results import write_atomic

__all__ = [
    "NO_EVIDENCE",
    "TINY_MODEL_NOTE",
    "VERDICT_RULE",
    "FeatureTest",
    "HeaderTest",
    "MemcheckResult",
    "MemcheckSettings",
    "RawTable",
    "RowTest",
    "ensure_memcheck",
    "memcheck_path",
    "raw_table",
    "run_memcheck",
    "write_memcheck",
]

log = logging.getLogger("bench")


# ---------------------------------------------------------------------------------------------
# Running and storing


TESTS = (header_test, row_test, feature_test)


def _timed(test: Any, table: RawTable, settings: MemcheckSettings, asker: _Asker) -> Any:
    started = time.perf_counter()
    result = test(table, settings, asker)
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def run_memcheck(
    dataset: DictConfig | Mapping[str, Any],
    llm: DictConfig | Mapping[str, Any],
    settings: MemcheckSettings | None = None,
    backend: LLMBackend | None = None,
) -> MemcheckResult:
    """Run the three tests of one dataset config on one llm config (through the request cache
    unless `llm.cache` is off); `backend` overrides the one the llm config describes."""
    from bench.llm.backend import as_llm_config, context_limit, make_backend

    settings = settings or MemcheckSettings()
    started = time.perf_counter()
    llm_cfg = as_llm_config(llm)
    table = raw_table(dataset)
    own = backend is None
    backend = backend or make_backend(llm_cfg)
    try:
        cap = min(settings.max_prompt_chars, context_limit(llm_cfg) // 2)
        asker = _Asker(backend, chat=llm_cfg.api == "chat", prompt_cap=cap)
        header, row, feature = (_timed(test, table, settings, asker) for test in TESTS)
    finally:
        if own:
            backend.close()
    return MemcheckResult(
        dataset=str(dataset["name"]),
        llm=str(llm_cfg.name),
        model=str(llm_cfg.model),
        source=table.origin,
        verbatim_source=table.verbatim,
        header=header,
        row=row,
        feature=feature,
        settings=settings,
        usage=asker.usage,
        seconds=round(time.perf_counter() - started, 3),
    )


def memcheck_path(results_dir: str | Path, dataset: str, llm: str) -> Path:
    """Where the memcheck of (dataset, llm) is stored: `<results_dir>/audits/`."""
    return Path(results_dir) / "audits" / f"memcheck__{dataset}__{llm}.json"


def _stored_model(path: Path) -> str | None:
    """The model a stored memcheck tested (None: none stored, or unreadable)."""
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["model"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_memcheck(result: MemcheckResult, results_dir: str | Path) -> Path:
    """Write the result's JSON atomically (a reader never sees half a file)."""
    path = memcheck_path(results_dir, result.dataset, result.llm)
    text = json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n"
    write_atomic(path, text.encode("utf-8"))
    return path


def ensure_memcheck(
    dataset: DictConfig | Mapping[str, Any], llm: DictConfig | Mapping[str, Any], results_dir: Path
) -> Path | None:
    """bench-run's `memcheck=true`: the memcheck of this job's (dataset, llm), unless it is
    stored already or another job is running it. Never raises: a failure is logged, and the
    sweep goes on."""
    from bench.claims import RunClaims

    path = memcheck_path(results_dir, str(dataset["name"]), str(llm["name"]))
    if _stored_model(path) == str(llm.get("model")):  # the same config name may serve another
        return path
    claims = RunClaims(path.parent)
    if not claims.claim(path.stem):
        return None
    try:
        log.info("memcheck of %s on %s: running", dataset["name"], llm["name"])
        result = run_memcheck(dataset, llm)
        write_memcheck(result, results_dir)
        log.info(
            "memcheck of %s on %s: %s (%s)", dataset["name"], llm["name"], result.verdict, path
        )
        return path
    except Exception as error:  # an audit must never take down the sweep it accompanies
        log.warning(
            "memcheck of %s on %s failed: %s: %s",
            dataset["name"],
            llm["name"],
            type(error).__name__,
            error,
        )
        return None
    finally:
        claims.release(path.stem)
