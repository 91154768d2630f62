"""How a class probability is read from an LLM (`llm.scoring`).

* ``logprobs``: the next-token log-probabilities of each label (both backends);
* ``verbalized``: the model names its answer and a probability (0-100); both are parsed;
* ``sampled``: `llm.scoring_samples` answers drawn at `llm.scoring_temperature`, each with its
  own seed (so the request cache reproduces them), as smoothed frequencies;
* ``auto``: logprobs where the endpoint returns them, else verbalized.
"""

from __future__ import annotations

__all__ = ["SCORING_MODES"]

SCORING_MODES = ("auto", "logprobs", "verbalized", "sampled")
