"""In-context prompts: the instruction from the dataset card, label verbalizers, the layout.

Layout (shared part first, query last, so any engine's prefix cache reuses the shared part)::

    <instruction: what a row is, what to predict, the possible answers[, column glossary]>

    <shot 1 serialized>
    Answer: <verbalized label>
    ...
    <query serialized>
    Answer:

The model's probability of each answer word after the final ``Answer:`` is the class's score.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["ANSWER", "PROMPT_VERSION", "Verbalizer", "instruction"]

PROMPT_VERSION = 1  # part of every run's identity: bump when the layout changes
ANSWER = "Answer:"


@dataclass(frozen=True)
class Verbalizer:
    """The answer word for each class; first tokens must differ so one position decides."""

    classes: tuple[str, ...]
    words: tuple[str, ...]

    @classmethod
    def build(
        cls,
        classes: Sequence[str],
        overrides: Mapping[str, str] | None = None,
        first_token: Callable[[str], object | None] | None = None,
    ) -> Verbalizer:
        """Words from `overrides` (method.params.verbalizer) or the class names themselves.

        Configured words whose first tokens collide are an error; default words that collide
        (e.g. "not churned" / "not renewed") fall back to letters A, B, C, ...
        """

        def first(text: str) -> object:  # a backend without a tokenizer answers None: split words
            token = None if first_token is None else first_token(text)
            if token is not None:
                return token
            return text.split()[0].lower() if text.split() else text

        overrides = dict(overrides or {})
        unknown = set(overrides) - set(classes)
        if unknown:
            raise ValueError(
                f"method.params.verbalizer names unknown classes {sorted(map(str, unknown))}; "
                f"classes are {', '.join(classes)} (in YAML, quote keys such as 'yes' and 'no', "
                "which YAML otherwise reads as true/false)"
            )
        words = tuple(_clean(overrides.get(c, c)) for c in classes)
        if _distinct(words, first):
            return cls(tuple(classes), words)
        if overrides:
            raise ValueError(
                f"method.params.verbalizer: the answers {list(words)} start with the same token; "
                "choose words whose first tokens differ"
            )
        letters = tuple(string.ascii_uppercase[i] for i in range(len(classes)))
        return cls(tuple(classes), letters)

    @property
    def uses_letters(self) -> bool:
        return self.words == tuple(string.ascii_uppercase[: len(self.classes)])

    def word(self, label: str) -> str:
        return self.words[self.classes.index(label)]

    def answers(self) -> list[str]:
        """The continuations scored after ``Answer:``."""
        return [f" {w}" for w in self.words]


def instruction(
    description: str,
    target: str,
    verbalizer: Verbalizer,
    glossary: Mapping[str, str] | None = None,
    n_shots: int = 0,
    question: str = "the last row",
    guidance: str | None = None,
) -> str:
    """The shared instruction built from the dataset card; `guidance` (e.g. a wording found by
    a prompt search) follows the description."""
    parts = []
    if description:
        parts.append(" ".join(description.split()))
    if guidance:
        parts.append(_squash(guidance))
    if verbalizer.uses_letters:
        options = "; ".join(
            f"{w} = {c}" for w, c in zip(verbalizer.words, verbalizer.classes, strict=True)
        )
        answer_line = f"Answer with one letter ({options})."
    else:
        answer_line = f"Answer with one of: {', '.join(verbalizer.words)}."
    examples = f" {n_shots} labelled examples come first." if n_shots else ""
    parts.append(f"Predict `{target}` for {question}.{examples} {answer_line}")
    if glossary:
        parts.append(
            "Columns:\n"
            + "\n".join(f"- {name}: {_squash(text)}" for name, text in glossary.items())
        )
    return "\n\n".join(parts)


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", str(text).replace("_", " ")).strip()


def _distinct(words: Sequence[str], first: Callable[[str], object]) -> bool:
    firsts = [first(f" {w}") for w in words]
    return len(set(firsts)) == len(firsts) and all(w for w in words)
