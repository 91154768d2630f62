"""llm_icl at scale (issue 27, items 4 and 10): more than 26 classes whose names collide get
answer codes that still differ in their first token (scored on the embedded Gemma), and a long
pass says how far it got by the clock, not by the batch."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from bench.config import compose_config
from bench.llm.backend import make_backend
from bench.llm.prompts import Verbalizer, instruction, letter_codes
from bench.methods import llm_base
from bench.methods.llm_base import RowProgress
from bench.methods.llm_icl import LLMICLClassifier

N_CLASSES = 50


def local(name: str, tmp_path: Path) -> dict[str, Any]:
    cfg = compose_config(
        [f"llm={name}", f"llm.cache_path={tmp_path / 'c.sqlite'}", "llm.n_threads=1"]
    )
    return OmegaConf.to_container(cfg.llm, resolve=True)


def colliding(n: int) -> list[str]:
    """Class names that share their first word: the default words collide."""
    return [f"grade {i:02d}" for i in range(n)]


def test_codes_past_z() -> None:
    codes = letter_codes(N_CLASSES)
    assert codes[:26] == tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    assert codes[26:29] == ("AA", "AB", "AC") and len(set(codes)) == N_CLASSES
    verbalizer = Verbalizer.build(colliding(N_CLASSES))
    assert verbalizer.words == codes and verbalizer.uses_letters
    text = instruction("", "grade", verbalizer)
    assert "Answer with one code (A = grade 00;" in text and "AX = grade 49)" in text
    # up to 26 classes, the letters as before
    assert Verbalizer.build(colliding(3)).words == ("A", "B", "C")
    assert "Answer with one letter (A = grade 00;" in instruction(
        "", "g", Verbalizer.build(colliding(3))
    )


def test_codes_skip_those_whose_first_token_is_taken() -> None:
    # a tokenizer that splits every code into letters: only one-letter codes can differ
    with pytest.raises(ValueError, match=r"method\.params\.verbalizer"):
        letter_codes(30, first=lambda text: text.strip()[0])
    # one that keeps "AB" whole but splits "AA": AA is skipped
    codes = letter_codes(28, first=lambda text: "A" if text.strip() == "AA" else text.strip())
    assert codes[26:] == ("AB", "AC")


@pytest.mark.parametrize("name", ["local_gemma3_270m", "local_smollm2_135m"])
def test_the_models_tokenizers_tell_fifty_codes_apart(name: str, tmp_path: Path) -> None:
    backend = make_backend(local(name, tmp_path))
    try:
        verbalizer = Verbalizer.build(colliding(N_CLASSES), first_token=backend.first_token)
        firsts = [backend.first_token(answer) for answer in verbalizer.answers()]
    finally:
        backend.close()
    assert len(set(firsts)) == N_CLASSES and verbalizer.uses_letters


def fifty_class_table(rows: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, N_CLASSES, rows)
    X = pd.DataFrame(
        {"score": labels * 2 + rng.integers(0, 2, rows), "shift": rng.integers(1, 4, rows)}
    )
    return X, pd.Series([f"grade {i:02d}" for i in labels])


@pytest.mark.e2e
def test_fifty_colliding_classes_are_scored_on_gemma(tmp_path: Path) -> None:
    X, y = fifty_class_table(12, seed=0)
    X_test, _ = fifty_class_table(3, seed=1)
    estimator = LLMICLClassifier(
        llm=local("local_gemma3_270m", tmp_path),
        class_labels=tuple(colliding(N_CLASSES)),
        target="grade",
    ).fit(X, y)
    proba = estimator.predict_proba(X_test)
    assert proba.shape == (3, N_CLASSES)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    info = estimator.fit_info_
    assert info["scoring"] == {"logprobs": 3} and info["invalid_answers"] == 0
    words = list(info["verbalizer"].values())
    assert words[:2] == ["A", "B"] and "AA" in words and len(set(words)) == N_CLASSES


# -- progress by the clock ----------------------------------------------------------------------
def progress_lines(caplog: pytest.LogCaptureFixture, what: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith(what)]


def test_progress_speaks_by_the_clock_before_any_row_is_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.INFO, logger="bench"),
        RowProgress("rows: %d/%d done", 10, every_s=0.2) as progress,
    ):
        time.sleep(0.5)  # one slow row: nothing is through yet
        progress.add(4)
        time.sleep(0.3)
    lines = [r.getMessage() for r in progress_lines(caplog, "rows:")]
    assert lines[0].startswith("rows: 0/10 done, none finished after")
    assert any(line.startswith("rows: 4/10 done, ") and "s to go" in line for line in lines)
    count = len(lines)
    time.sleep(0.4)  # the clock stops with the pass
    assert len(progress_lines(caplog, "rows:")) == count


@pytest.mark.e2e
def test_a_long_llm_icl_pass_says_how_far_it_got_within_the_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows of long cells in one batch (64 rows by default): the progress lines come by time, every
    `PROGRESS_EVERY_S`, from the start of the pass, not once a batch is through."""
    every = 1.0
    monkeypatch.setattr(llm_base, "PROGRESS_EVERY_S", every, raising=False)
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "omega"]

    def notes(n: int) -> pd.DataFrame:
        return pd.DataFrame({"note": [" ".join(rng.choice(words, 600)) for _ in range(n)]})

    X, y = notes(2), pd.Series(["no", "yes"])
    estimator = LLMICLClassifier(llm=local("local_smollm2_135m", tmp_path)).fit(X, y)
    with caplog.at_level(logging.INFO, logger="bench"):
        started = time.time()
        estimator.predict_proba(notes(3))
        ended = time.time()
    stamps = [started] + [r.created for r in progress_lines(caplog, "llm_icl:")]
    assert ended - started > 3 * every  # long enough to need several lines
    assert len(stamps) >= 3, stamps
    gaps = np.diff([*stamps, ended])
    assert gaps.max() < every + 1.0, gaps  # never silent for much longer than the interval
