"""How a class probability is read from an LLM (`llm.scoring`).

* ``logprobs``: the next-token log-probabilities of each label (both backends);
* ``verbalized``: the model names its answer and a probability (0-100); both are parsed;
* ``sampled``: `llm.scoring_samples` answers drawn at `llm.scoring_temperature`, each with its
  own seed (so the request cache reproduces them), as smoothed frequencies;
* ``auto``: logprobs where the endpoint returns them, else verbalized.
"""

from __future__ import annotations

from bench.llm.protocol import LLMBackend

__all__ = ["SCORING_MODES", "with_scoring"]

SCORING_MODES = ("auto", "logprobs", "verbalized", "sampled")


def with_scoring(backend: LLMBackend) -> LLMBackend:
    """`backend` answering score requests as its config's `llm.scoring` says."""
    return backend  # logprobs (with the parsed-answer fallback) until the other modes land
