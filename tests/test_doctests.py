"""Every `>>>` example in a bench docstring runs and shows what it says.

Examples that nothing runs go stale silently; this test finds every module of the package whose
source holds one and runs its doctests, so an example is either true or removed.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import bench

PACKAGE_ROOT = Path(bench.__file__).parent


def _modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages([str(PACKAGE_ROOT)], prefix="bench."):
        spec = importlib.util.find_spec(info.name)
        origin = spec.origin if spec else None
        if origin and origin.endswith(".py") and ">>>" in Path(origin).read_text():
            names.append(info.name)
    return sorted(names)


MODULES = _modules_with_examples()


def test_examples_are_found() -> None:
    # The package documents its public helpers with examples; finding none means discovery broke.
    assert len(MODULES) >= 10, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.attempted > 0, f"{name}: '>>>' in the source but no example was collected"
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
