"""The one generic registry: lazy "module:attr" entries and "did you mean" errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.methods.base import MethodKind, MethodTags
from bench.registry import (
    METHODS,
    SOURCES,
    Registry,
    UnknownNameError,
    import_object,
    unknown_name_message,
)


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module in a user's own folder that nothing has imported yet."""
    name = f"user_plugin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text("LOADED = True\n\ndef make():\n    return 'made'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_unknown_name_lists_valid_names_and_suggests_closest() -> None:
    registry = Registry("widget", {"alpha": "json:dumps", "beta": "json:loads"})
    with pytest.raises(UnknownNameError) as caught:
        registry.get("alpah", key="thing.widget")
    message = str(caught.value)
    assert "Unknown widget 'alpah'" in message
    assert "alpha, beta" in message
    assert "Did you mean 'alpha'?" in message
    assert "thing.widget" in message  # the config key to fix


def test_unknown_name_without_close_match_has_no_suggestion() -> None:
    message = unknown_name_message("widget", "zzzzzz", ["alpha", "beta"])
    assert "Valid names: alpha, beta." in message
    assert "Did you mean" not in message


def test_unknown_name_error_is_a_key_error_whose_message_is_not_quoted() -> None:
    error = UnknownNameError("Unknown widget 'x'.")
    assert isinstance(error, KeyError)
    assert str(error) == "Unknown widget 'x'."


def test_entries_are_imported_only_on_get(plugin_module: str) -> None:
    registry = Registry("plugin")
    registry.register("maker", f"{plugin_module}:make")
    assert "maker" in registry
    assert registry.names() == ["maker"]
    assert plugin_module not in sys.modules  # registering and listing import nothing
    assert registry.get("maker")() == "made"
    assert plugin_module in sys.modules


def test_unregistered_module_attr_name_is_imported_directly(plugin_module: str) -> None:
    registry = Registry("plugin", {"other": "json:dumps"})
    assert f"{plugin_module}:make" not in registry
    assert registry.get(f"{plugin_module}:make")() == "made"


def test_registering_a_name_twice_with_another_target_fails() -> None:
    registry = Registry("plugin", {"maker": "json:dumps"})
    registry.register("maker", "json:dumps")  # the same entry again is harmless
    with pytest.raises(ValueError, match="already registered as json:dumps"):
        registry.register("maker", "json:loads")


@pytest.mark.parametrize("path", ["json", "json:", ":dumps"])
def test_import_object_needs_module_and_attribute(path: str) -> None:
    with pytest.raises(ValueError, match="module:attribute"):
        import_object(path)


@pytest.mark.parametrize(
    ("registry", "name"),
    [(r, n) for r in (SOURCES, METHODS) for n in r.names()],
    ids=lambda v: v.kind if isinstance(v, Registry) else v,
)
def test_every_registered_entry_imports(registry: Registry, name: str) -> None:
    entry = registry.get(name)
    if registry is METHODS:  # a method kind declares its builder and its tags
        assert isinstance(entry, MethodKind) and callable(entry.build)
        assert isinstance(entry.tags, MethodTags)
    else:
        assert callable(entry)
