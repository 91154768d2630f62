"""LLM-written models: the LLM writes scikit-learn code, a sandbox runs it.

`fit` asks the LLM for `n_candidates` programs (bench/llm/codegen_prompt.py: the contract, a
worked example for another table, this table, and a different approach per candidate). Each
reply is sanitised and checked before it runs (bench/llm/codegen_checks.py: script code at the
top level is dropped; a global `df` or wrong column names are errors found without a sandbox
run), then cross-validated on the training rows in the sandbox (bench/llm/sandbox.py). A failing
program goes back with its failing line and error for up to `repair_rounds` repairs, sampled at
`repair_temperature` with a seed (a repeated program is recorded and not run again), and the
candidate with the best harness-computed CV score is kept and, still in `fit`, fitted on all
training rows in the sandbox (bench/llm/sandbox_model.py), which sends the fitted model back
pickled: training is a one-off cost. `predict_proba` loads that model in a fresh sandboxed
process and predicts the test *features*; the test labels never reach the sandbox.

Every generated program (code, what sanitising dropped, error, CV score, tokens, cost) is in
``fit_info_["programs"]`` (the record's ``details.programs``; the record's own integer
``attempts`` counts retries of the run; ``final_fit_s`` and ``predict_sandbox_s`` are the
sandbox seconds of the final fit and of predicting) and the kept program in
``artifacts_["model.py"]``,
which the runner saves next to the run's result. When no attempt works, `fit` raises
`CodegenFailed`: the run is recorded as failed with the reason and its attempts, never silently
replaced by a fallback model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from bench.errors import MethodFailed
from bench.llm.backend import GenerateRequest, LLMBackend, Usage, make_backend
from bench.llm.codegen_checks import fingerprint, sanitise, static_problems
from bench.llm.codegen_prompt import (
    CODEGEN_PROMPT_VERSION,
    EXAMPLE_COLUMNS,
    codegen_prompt,
    extract_code,
    repair_prompt,
)
from bench.llm.sandbox import SandboxLimits, SandboxResult, confinement_available, run_program
from bench.llm.sandbox_model import fit_model, predict_model
from bench.methods.base import (
    MethodContext,
    MethodKind,
    MethodReport,
    MethodTags,
    Range,
    keep_params,
)
from bench.methods.llm_base import LLMEstimator, require_llm

__all__ = ["LLM_CODEGEN", "CodegenFailed", "LLMCodegenClassifier", "build_llm_codegen"]


class CodegenFailed(MethodFailed):
    """No generated program worked; carries what was tried so the run record keeps it."""

    def __init__(self, message: str, details: dict[str, Any], usage: dict[str, Any]) -> None:
        super().__init__(message, MethodReport(details=details, usage=usage))
        self.details, self.usage = details, usage


class LLMCodegenClassifier(LLMEstimator):
    """A classifier whose model code an LLM writes; a scikit-learn estimator."""

    def __init__(
        self,
        llm: dict[str, Any] | None = None,
        target: str = "label",
        task_description: str = "",
        feature_descriptions: dict[str, str] | None = None,
        positive_label: str | None = None,
        n_candidates: int = 1,
        repair_rounds: int = 1,
        example_rows: int = 5,
        max_tokens: int = 768,
        temperature: float = 0.0,
        repair_temperature: float = 0.6,
        cv_folds: int = 5,
        sandbox: dict[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        keep_params(self, locals())

    def _check_params(self) -> None:
        require_llm(self, self.llm)
        self._check_confinement()

    def _fit(self, X: pd.DataFrame, labels: pd.Series) -> None:
        ledger = self.run_ledger()
        self.metric_ = "roc_auc" if len(self.classes_) == 2 else "accuracy"
        # ROC AUC needs a positive class; without one, the last class (sorted), as in sklearn.
        self.positive_ = self.positive_label or str(self.classes_[-1])
        attempts: list[dict[str, Any]] = []
        ledger.details.update(
            programs=attempts,  # filled as they run: a failure midway still reports them
            metric=self.metric_,
            isolation="bubblewrap" if confinement_available() else "none",
        )
        backend = make_backend(self.llm)
        try:
            for candidate in range(self.n_candidates):
                attempts += self._candidate(backend, X, labels, candidate)
        finally:
            backend.close()
        working = [a for a in attempts if a["ok"]]
        if not working:
            last = attempts[-1]["error"] if attempts else "no attempt was made"
            raise CodegenFailed(
                f"none of {len(attempts)} generated program(s) worked "
                f"({self.n_candidates} candidate(s), {self.repair_rounds} repair round(s)); "
                f"last error: {_error_line(last)}",
                ledger.details,
                self.usage_,
            )
        # The best by cross-validation; a program that ran but could not be cross-validated
        # (too few rows of a class) ranks below any scored one.
        best = max(working, key=lambda a: -np.inf if a["cv_score"] is None else a["cv_score"])
        self.code_ = best["code"]
        ledger.artifacts["model.py"] = self.code_
        ledger.details.update(chosen_attempt=attempts.index(best), cv_score=best["cv_score"])
        # Training is one-off: the kept program is fitted on every training row here, once.
        final, self.fitted_model_ = fit_model(self.code_, X, labels, self._limits())
        ledger.details.update(final_fit_s=round(final.seconds, 3), predict_sandbox_s=0.0)
        if not final.ok:
            raise CodegenFailed(
                f"the chosen program failed when fitted on all {len(X)} training rows: "
                f"{_error_line(final.error or '')}",
                ledger.details,
                self.usage_,
            )

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """The kept program's fitted model (from fit) predicts the rows in the sandbox."""
        ledger = self.run_ledger()
        result = predict_model(
            self.code_, self.fitted_model_, list(self.classes_), X, self._limits()
        )
        ledger.details["predict_sandbox_s"] += round(result.seconds, 3)
        if not result.ok:
            raise RuntimeError(f"the chosen program failed when predicting: {result.error}")
        return result.proba

    # -- one candidate: generate, check, run, repair -------------------------------------------
    def _candidate(
        self, backend: LLMBackend, X: pd.DataFrame, y: pd.Series, candidate: int
    ) -> list[dict[str, Any]]:
        original = codegen_prompt(
            X,
            y,
            target=self.target,
            task_description=self.task_description,
            metric="ROC AUC" if self.metric_ == "roc_auc" else "accuracy",
            descriptions=self.feature_descriptions,
            example_rows=self.example_rows,
            candidate=candidate,
        )
        prompt, attempts = original, []
        seen: dict[str, int] = {}  # program fingerprint -> the round that first ran it
        errors: dict[int, str] = {}  # round -> the error of the program it ran
        for round_ in range(self.repair_rounds + 1):
            # Repairs sample (seeded, so they reproduce): at temperature 0 a small model often
            # answers a repair request with the program it was asked to fix.
            temperature = self.temperature if round_ == 0 else self.repair_temperature
            seed = self.seed * 1000 + candidate * 10 + round_ if temperature > 0 else None
            text, usage = self._generate(backend, prompt, temperature, seed)
            attempt: dict[str, Any] = {
                "candidate": candidate,
                "round": round_,
                "temperature": temperature,
                "dropped": [],
                "identical_to": None,
            }
            code = extract_code(text)
            if code is None:
                code, outcome = text, _not_run("the reply holds no Python code block")
            else:
                cleaned = sanitise(code)
                code, attempt["dropped"] = cleaned.code, cleaned.dropped
                key = fingerprint(code)
                if key in seen:  # the same program again: recorded, not run twice
                    attempt["identical_to"] = seen[key]
                    outcome = _not_run(
                        f"the repair is the program of round {seen[key]} again; it was not run "
                        f"a second time. That program failed with: {_error_line(errors[seen[key]])}"
                    )
                else:
                    seen[key] = round_
                    outcome = self._check_and_run(code, X, y)
                    errors[round_] = outcome.error or ""
            attempts.append(
                {**attempt, "code": code, **outcome.summary(), "usage": usage.as_dict()}
            )
            if outcome.ok:
                break
            prompt = repair_prompt(original, code, outcome.error or "", round_ + 1)
        return attempts

    def _check_and_run(self, code: str, X: pd.DataFrame, y: pd.Series) -> SandboxResult:
        """Cross-validate `code` in the sandbox, unless it cannot work: a syntax error, a
        global it never defines or column names the table does not have are reported as its
        error without spending a sandbox run."""
        problems = static_problems(code, [str(c) for c in X.columns], EXAMPLE_COLUMNS)
        if problems:
            return _not_run("; ".join(problems) + " (found before running it)")
        return run_program(
            code,
            X,
            y,
            metric=self.metric_,
            positive_label=self.positive_,
            n_folds=self.cv_folds,
            seed=self.seed,
            limits=self._limits(),
        )

    def _generate(
        self, backend: LLMBackend, prompt: str, temperature: float, seed: int | None
    ) -> tuple[str, Usage]:
        """Chat models get the prompt as a user message; a completion model (the embedded
        base models) gets it followed by an opened code fence to continue."""
        if self._chat():
            request: Any = [{"role": "user", "content": prompt}]
            opened, stop = "", None
        else:  # the code ends where the model closes the fence
            opened, stop = "```python\n", ["```"]
            request = f"{prompt}\n\n{opened}"
        (result,) = backend.generate(
            [GenerateRequest(request, self.max_tokens, temperature, stop, seed)]
        )
        self.run_ledger().usage += result.usage
        return opened + result.text, result.usage

    def _chat(self) -> bool:
        return (self.llm or {}).get("api", "chat") == "chat"

    def _check_confinement(self) -> None:
        """Code from a hosted model (which nobody here controls) runs only confined, unless
        the user says otherwise; the embedded models' code may run under the limits alone."""
        embedded = (self.llm or {}).get("backend") == "llamacpp"
        if embedded or confinement_available() or self._limits().allow_unconfined:
            return
        raise ValueError(
            f"llm_codegen would run code written by llm '{(self.llm or {}).get('name')}' without "
            "confinement: bubblewrap (bwrap) is not installed or cannot create namespaces here "
            "(Debian/Ubuntu: apt-get install bubblewrap; README 'The sandbox'). Set "
            "method.params.sandbox.allow_unconfined=true to run it under the resource limits "
            "alone."
        )

    def _limits(self) -> SandboxLimits:
        return SandboxLimits(**(self.sandbox or {}))


def _not_run(error: str) -> SandboxResult:
    return SandboxResult(ok=False, error=error)


def _error_line(text: str) -> str:
    """The line of an error text that says what went wrong: a traceback's last line (the
    exception), which is also the only line of a one-line error."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else str(text)


def build_llm_codegen(cfg: DictConfig, context: MethodContext) -> LLMCodegenClassifier:
    """METHODS registry entry for `kind: llm_codegen`."""
    params = OmegaConf.to_container(cfg.params, resolve=True)
    # Sandboxed fits use the job's share of the cores unless method.params.sandbox says otherwise.
    params["sandbox"] = {"threads": context.n_jobs, **(params.get("sandbox") or {})}
    return LLMCodegenClassifier(
        llm=context.llm,
        target=context.target,
        task_description=context.description,
        feature_descriptions={f.name: f.description for f in context.features},
        positive_label=context.positive_label,
        seed=context.seed,
        **params,
    )


LLM_CODEGEN = MethodKind(
    build=build_llm_codegen,
    tags=MethodTags(uses_llm=True, prompt_version=f"codegen-{CODEGEN_PROMPT_VERSION}"),
    param_ranges={
        "n_candidates": Range(low=1),
        "repair_rounds": Range(low=0),
        "example_rows": Range(low=0),
        "max_tokens": Range(low=1),
        "temperature": Range(low=0, high=2, integer=False),
        "repair_temperature": Range(low=0, high=2, integer=False),
        "cv_folds": Range(low=2),
    },
)
