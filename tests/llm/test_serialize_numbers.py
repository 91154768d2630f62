"""The serializer's number formats (`serializer.numbers`): raw, rounded, binned and words.

Bins are quartiles of the run's training rows only: fitting on training rows and then writing a
test row with an extreme value leaves every edge as it was, and the edges differ from those a
fit that also saw the test rows would give. The end-to-end test fits `LLMICLClassifier` on
callcenter rows with the embedded Gemma and reads the bin words in its prompts.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from bench.config import compose_config, load_llm_config
from bench.data.dataset import Task
from bench.llm.serialize import BIN_LABELS, FORMATS, NUMBER_FORMATS, NumberBins, RowSerializer
from bench.methods.llm_icl import LLMICLClassifier

TRAIN = pd.DataFrame(
    {
        "wait": [100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0, 900.0],
        "calls": pd.array([0, 0, 0, 0, 0, 1, 1, 1, 2], dtype="Int64"),
        "vip": [True, False, True, False, True, False, True, False, True],
        "plan": ["gold", "basic", "gold", "basic", "gold", "basic", "gold", "basic", "gold"],
    }
)
# TRAIN's wait quartiles: 300, 500, 700.


def pairs(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines())


def edges(serializer: RowSerializer) -> dict[str, tuple[float, ...]]:
    return dict(serializer.bins_.edges)


# -- raw and rounded --------------------------------------------------------------------------
def test_raw_is_the_default_and_writes_numbers_as_before() -> None:
    row = {"wait": 712.0, "ratio": 12.3456}
    assert RowSerializer("list").record(row) == RowSerializer("list", numbers="raw").record(row)
    assert pairs(RowSerializer("list").record(row)) == {"wait": "712", "ratio": "12.35"}


def test_rounded_keeps_two_significant_digits_of_every_number() -> None:
    row = {"wait": 712, "ratio": 12.34, "tiny": 0.01234, "big": 12345.678, "n": 5, "gap": np.nan}
    text = RowSerializer("list", numbers="rounded").record({**row, "plan": "gold 712"})
    assert pairs(text) == {
        "wait": "710",
        "ratio": "12",
        "tiny": "0.012",
        "big": "12000",
        "n": "5",
        "gap": "missing",
        "plan": "gold 712",  # text is never rounded
    }


# -- binned and words -------------------------------------------------------------------------
def test_binned_writes_each_numbers_training_quartile() -> None:
    serializer = RowSerializer("list", numbers="binned").fit(TRAIN)
    assert edges(serializer)["wait"] == (300.0, 500.0, 700.0)
    words = [pairs(serializer.record({"wait": v}))["wait"] for v in (50, 300, 301, 600, 701)]
    assert words == ["low", "low", "medium", "high", "very high"]
    # Booleans, text and missing values are not binned; a column fit never saw is written raw.
    row = {"vip": True, "plan": "gold", "wait": np.nan, "other": 3.5}
    assert pairs(serializer.record(row)) == {
        "vip": "true",
        "plan": "gold",
        "wait": "missing",
        "other": "3.5",
    }
    assert set(edges(serializer)) == {"wait", "calls"}


def test_words_writes_the_bin_and_the_value() -> None:
    serializer = RowSerializer("list", numbers="words").fit(TRAIN)
    assert serializer.record({"wait": 712.0}) == "wait: very high (712)"
    assert serializer.record({"wait": 450.25}) == "wait: medium (450.2)"
    assert serializer.record({"wait": None}) == "wait: missing"


def test_tied_quartiles_leave_bins_empty_instead_of_ambiguous() -> None:
    """`calls` is 0 for 5 of 9 rows: quartiles (0, 0, 1), so 0 is low, 1 high, 2 very high."""
    serializer = RowSerializer("list", numbers="binned").fit(TRAIN)
    assert edges(serializer)["calls"] == (0.0, 0.0, 1.0)
    assert [pairs(serializer.record({"calls": v}))["calls"] for v in (0, 1, 2)] == [
        "low",
        "high",
        "very high",
    ]
    constant = RowSerializer("list", numbers="binned").fit(pd.DataFrame({"x": [7, 7, 7]}))
    assert [constant.record({"x": v}) for v in (7, 8)] == ["x: low", "x: very high"]


def test_bins_come_from_the_training_rows_only() -> None:
    """A test row with an extreme value changes no edge, and the edges are not the ones a fit
    on training and test rows together gives (so a fit that peeked would fail here)."""
    test = pd.DataFrame({"wait": [1e6, 2e6, 3e6, 4e6, 5e6, 6e6]})
    serializer = RowSerializer("list", numbers="binned").fit(TRAIN)
    before = edges(serializer)
    assert [serializer.record({"wait": v}) for v in test["wait"]] == ["wait: very high"] * 6
    assert edges(serializer) == before
    assert before["wait"] == tuple(np.quantile(TRAIN["wait"], [0.25, 0.5, 0.75]))
    peeked = RowSerializer("list", numbers="binned").fit(pd.concat([TRAIN, test]))
    assert edges(peeked)["wait"] != before["wait"]
    assert serializer.record({"wait": 750.0}) != peeked.record({"wait": 750.0})


def test_fitting_returns_a_fitted_copy_and_binning_needs_one() -> None:
    unfitted = RowSerializer("list", numbers="binned")
    fitted = unfitted.fit(TRAIN)
    assert unfitted.bins_ is None and fitted.bins_ is not None
    with pytest.raises(ValueError, match=r"serializer\.numbers='binned'.*fit"):
        unfitted.record({"wait": 1.0})
    # raw and rounded learn nothing and need no fit.
    assert RowSerializer("list", numbers="rounded").fit(TRAIN).bins_ is None
    again = pickle.loads(pickle.dumps(fitted))
    assert again.record({"wait": 650}) == fitted.record({"wait": 650}) == "wait: high"


@pytest.mark.parametrize("numbers", ["binned", "words"])
def test_binning_without_training_rows_is_refused_not_written_raw(numbers: str) -> None:
    with pytest.raises(ValueError, match=rf"serializer\.numbers={numbers}.*n_train=0"):
        RowSerializer("list", numbers=numbers).fit(TRAIN.iloc[:0])
    assert RowSerializer("list", numbers="rounded").fit(TRAIN.iloc[:0]).bins_ is None


def test_the_same_training_rows_always_give_the_same_bins() -> None:
    shuffled = TRAIN.sample(frac=1.0, random_state=3)
    assert NumberBins.fit(TRAIN) == NumberBins.fit(shuffled)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("numbers", ["binned", "words"])
def test_bin_words_work_in_every_format(fmt: str, numbers: str) -> None:
    serializer = RowSerializer(fmt, numbers=numbers).fit(TRAIN)
    text = serializer.record({"wait": 800.0, "plan": "gold", "calls": np.nan})
    assert ("very high (800)" if numbers == "words" else "very high") in text
    if fmt == "json":  # a bin is text, so a JSON string
        expected = "very high" if numbers == "binned" else "very high (800)"
        assert json.loads(text) == {"wait": expected, "plan": "gold", "calls": None}


def test_an_unknown_number_format_names_the_key_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"serializer\.numbers") as error:
        RowSerializer("list", numbers="scientific")
    for name in NUMBER_FORMATS:
        assert name in str(error.value)


@pytest.mark.parametrize(
    ("name", "numbers"),
    [("list_rounded", "rounded"), ("list_binned", "binned"), ("list_words", "words")],
)
def test_the_number_format_configs_set_numbers(name: str, numbers: str) -> None:
    cfg = compose_config([f"serializer={name}"]).serializer
    assert (cfg.name, cfg.format, cfg.numbers) == (name, "list", numbers)


# -- end to end: the in-context classifier on callcenter --------------------------------------
def test_llm_icl_writes_bins_learned_from_its_training_rows(callcenter_task: Task) -> None:
    """Fitted on 200 callcenter rows, the prompts carry bin words, the bins are those of the
    200 rows, and writing query rows with extreme waits moves nothing."""
    llm: dict[str, Any] = OmegaConf.to_container(
        load_llm_config("local_gemma3_270m", key="llm"), resolve=True
    )
    X, y = callcenter_task.X, callcenter_task.y
    train, queries = X.iloc[:200], X.iloc[200:205].copy()
    queries["queue_wait_s"] = 1e7  # far beyond every training wait
    model = LLMICLClassifier(
        llm=llm,
        serializer={"format": "list", "numbers": "binned"},
        class_labels=callcenter_task.class_labels,
        max_shots=8,
    )
    model.fit(train, y.iloc[:200])
    bins = model.serializer_.bins_
    assert bins == NumberBins.fit(train)
    assert bins != NumberBins.fit(pd.concat([train, queries]))
    prompts = model.prompts(queries)
    assert bins == model.serializer_.bins_
    shots = prompts[0][len(model.instruction_) :]
    assert any(f"queue_wait_s: {label}\n" in shots for label in BIN_LABELS)
    for prompt in prompts:
        assert prompt.rsplit("queue_wait_s: ", 1)[1].startswith("very high\n")
    numeric = [f.name for f in callcenter_task.features if f.type == "numeric"]
    assert set(dict(bins.edges)) == set(numeric)
