"""Label verbalizers and the instruction: answer words whose first tokens differ (letters when
the class names collide), errors that name method.params.verbalizer, and collisions checked with
the real tokenizer of the embedded model."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from omegaconf import DictConfig

from bench.llm.backend import make_backend
from bench.llm.prompts import ANSWER, Verbalizer, instruction


@pytest.fixture(scope="module")
def first_token(local_llm_cfg: DictConfig) -> Iterator[Callable[[str], object]]:
    """The llama.cpp backend's `first_token`: the SmolLM2 tokenizer, not a word split."""
    backend = make_backend(local_llm_cfg, use_cache=False)
    yield backend.first_token
    backend.close()


def test_distinct_class_names_are_the_answer_words() -> None:
    verbalizer = Verbalizer.build(["no", "yes"])
    assert verbalizer.words == ("no", "yes") and not verbalizer.uses_letters
    assert verbalizer.answers() == [" no", " yes"]
    assert verbalizer.word("yes") == "yes"


def test_class_names_are_cleaned_into_words() -> None:
    verbalizer = Verbalizer.build(["not_churned", "churned"])
    assert verbalizer.words == ("not churned", "churned")
    assert verbalizer.classes == ("not_churned", "churned")  # the labels themselves stay


def test_default_names_whose_first_word_collides_fall_back_to_letters() -> None:
    verbalizer = Verbalizer.build(["not churned", "not renewed"])
    assert verbalizer.words == ("A", "B") and verbalizer.uses_letters
    assert verbalizer.word("not renewed") == "B"
    text = instruction("Customers.", "status", verbalizer)
    assert "A = not churned" in text and "B = not renewed" in text
    assert "one letter" in text


def test_three_colliding_classes_get_three_letters() -> None:
    verbalizer = Verbalizer.build(["low risk", "low income", "high"])
    assert verbalizer.words == ("A", "B", "C")
    assert "C = high" in instruction("", "risk", verbalizer)


@pytest.mark.parametrize(
    "overrides",
    [{"no": "maybe", "yes": "maybe"}, {"no": "not sure", "yes": "Not at all"}, {"no": "yes"}],
)
def test_a_configured_verbalizer_that_collides_is_an_error(overrides: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"method\.params\.verbalizer"):
        Verbalizer.build(["no", "yes"], overrides)


def test_a_configured_verbalizer_may_cover_some_classes() -> None:
    verbalizer = Verbalizer.build(["bad", "good"], {"bad": "risky"})
    assert verbalizer.words == ("risky", "good")
    assert verbalizer.word("bad") == "risky"


def test_an_unknown_class_in_the_verbalizer_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"method\.params\.verbalizer.*unknown.*'maybe'") as error:
        Verbalizer.build(["no", "yes"], {"maybe": "perhaps"})
    assert "no, yes" in str(error.value)  # the valid classes are listed


def test_the_tokenizer_decides_what_collides(first_token: Callable[[str], object]) -> None:
    # Different words, one first token for SmolLM2 (" Paris" + "ian").
    assert first_token(" Paris") == first_token(" Parisian")
    assert Verbalizer.build(["Paris", "Parisian"]).words == ("Paris", "Parisian")
    assert Verbalizer.build(["Paris", "Parisian"], first_token=first_token).uses_letters
    with pytest.raises(ValueError, match=r"method\.params\.verbalizer"):
        Verbalizer.build(["a", "b"], {"a": "Paris", "b": "Parisian"}, first_token)
    # One word up to case, two tokens: the tokenizer keeps them apart.
    assert first_token(" Yes") != first_token(" yes")
    assert Verbalizer.build(["Yes", "yes"]).uses_letters
    assert Verbalizer.build(["Yes", "yes"], first_token=first_token).words == ("Yes", "yes")


def test_the_instruction_comes_from_the_dataset_card() -> None:
    verbalizer = Verbalizer.build(["no", "yes"])
    description = "Contacts at a call center.\n  The label says whether   it was resolved."
    glossary = {"queue_wait_s": "Seconds waited\n in the queue.", "channel": "phone or chat"}
    text = instruction(description, "resolved", verbalizer, glossary, n_shots=16)
    assert text.startswith("Contacts at a call center. The label says whether it was resolved.")
    assert "Predict `resolved`" in text and "16 labelled examples" in text
    assert "Answer with one of: no, yes." in text
    assert "- queue_wait_s: Seconds waited in the queue." in text
    assert "- channel: phone or chat" in text
    assert ANSWER not in text  # only shots and the query carry "Answer:" lines


def test_a_zero_shot_instruction_mentions_no_examples() -> None:
    text = instruction("", "resolved", Verbalizer.build(["no", "yes"]))
    assert "labelled examples" not in text and "Columns:" not in text
    assert text.startswith("Predict `resolved`")


def test_column_descriptions_keep_the_names_and_values_they_quote() -> None:
    glossary = {"area_code": "One of area_code_408 or area_code_415."}
    text = instruction("", "churn", Verbalizer.build(["no", "yes"]), glossary)
    assert "- area_code: One of area_code_408 or area_code_415." in text
