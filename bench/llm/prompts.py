"""In-context prompts: the instruction from the dataset card, label verbalizers, the layout.

Layout (shared part first, query last, so any engine's prefix cache reuses the shared part)::

    <instruction: what a row is, what to predict, the possible answers[, column glossary]>

    <shot 1 serialized>
    Answer: <verbalized label>
    ...
    <query serialized>
    Answer:

The model's probability of each answer word after the final ``Answer:`` is the class's score.
Every text from the data or its card (description, target and column names, class names) is
sealed like a cell (`bench.llm.serialize.seal`): it cannot add an ``Answer:`` line or a
control token to the prompt.
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from bench.llm.serialize import seal

__all__ = ["ANSWER", "PROMPT_VERSION", "Verbalizer", "instruction"]

PROMPT_VERSION = 1  # part of every run's identity: bump when the layout changes
ANSWER = "Answer:"


@dataclass(frozen=True)
class Verbalizer:
    """The answer word for each class; first tokens must differ so one position decides."""

    classes: tuple[str, ...]
    words: tuple[str, ...]
    coded: bool = False  # the words are letter codes standing for the classes (A = first)

    @classmethod
    def build(
        cls,
        classes: Sequence[str],
        overrides: Mapping[str, str] | None = None,
        first_token: Callable[[str], object | None] | None = None,
    ) -> Verbalizer:
        """Words from `overrides` (method.params.verbalizer) or the class names themselves.

        Configured words whose first tokens collide are an error; default words that collide
        (e.g. "not churned" / "not renewed") fall back to letters A, B, C, ... and, past 26
        classes, to letter codes (AA, AB, ... then AAA, ...) whose first tokens differ
        (`letter_codes`).
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
        return cls(tuple(classes), letter_codes(len(classes), first), coded=True)

    @property
    def uses_letters(self) -> bool:
        """Whether the answers are letter codes standing for the classes (A = first class)."""
        return self.coded or self.words == tuple(string.ascii_uppercase[: len(self.classes)])

    def word(self, label: str) -> str:
        return self.words[self.classes.index(label)]

    def answers(self) -> list[str]:
        """The continuations scored after ``Answer:``."""
        return [f" {w}" for w in self.words]


_MAX_CODE_LETTERS = 3  # 26 + 676 + 17,576 codes: more classes than any prompt can hold


def letter_codes(n: int, first: Callable[[str], object] | None = None) -> tuple[str, ...]:
    """`n` answer codes: A..Z for up to 26 classes; beyond, the letters then the two- and
    three-letter codes (AA, AB, ...) in order, keeping each code whose first token (`first`,
    given the code after a space, as it follows ``Answer:``) no earlier code has, so that one
    token position still tells every class apart.

    >>> letter_codes(3)
    ('A', 'B', 'C')
    >>> letter_codes(28)[-3:]
    ('Z', 'AA', 'AB')
    """
    if n <= 26:
        return tuple(string.ascii_uppercase[:n])
    first = first or (lambda text: text.strip())
    codes: list[str] = []
    seen: set[object] = set()
    for code in _codes():
        token = first(f" {code}")
        if token not in seen:
            seen.add(token)
            codes.append(code)
            if len(codes) == n:
                return tuple(codes)
    raise ValueError(
        f"{n} classes need {n} answer codes whose first tokens differ, and the model's "
        f"tokenizer gives only {len(codes)} among the codes of up to {_MAX_CODE_LETTERS} "
        "letters: set method.params.verbalizer to words whose first tokens differ"
    )


def _codes() -> Iterator[str]:
    for size in range(1, _MAX_CODE_LETTERS + 1):
        for letters in itertools.product(string.ascii_uppercase, repeat=size):
            yield "".join(letters)


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
        parts.append(seal(description))
    if guidance:
        parts.append(seal(guidance))
    if verbalizer.uses_letters:
        options = "; ".join(
            f"{w} = {seal(c)}" for w, c in zip(verbalizer.words, verbalizer.classes, strict=True)
        )
        kind = "letter" if all(len(w) == 1 for w in verbalizer.words) else "code"
        answer_line = f"Answer with one {kind} ({options})."
    else:
        answer_line = f"Answer with one of: {', '.join(verbalizer.words)}."
    examples = f" {n_shots} labelled examples come first." if n_shots else ""
    parts.append(f"Predict `{seal(target)}` for {question}.{examples} {answer_line}")
    if glossary:
        parts.append(
            "Columns:\n"
            + "\n".join(f"- {seal(name)}: {seal(text)}" for name, text in glossary.items())
        )
    return "\n\n".join(parts)


def _clean(text: str) -> str:
    """A class name as an answer word: sealed, underscores as spaces."""
    return seal(str(text).replace("_", " "))


def _distinct(words: Sequence[str], first: Callable[[str], object]) -> bool:
    firsts = [first(f" {w}") for w in words]
    return len(set(firsts)) == len(firsts) and all(w for w in words)
