"""tabllm-bench: is an LLM good enough yet to replace the model you would build by hand?

>>> import bench
>>> callable(bench.load_results)
True
"""

from __future__ import annotations

from typing import Any

__all__ = ["__version__", "load_results"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Imported on first use, so `import bench` (and every CLI start) stays light.
    if name == "load_results":
        from bench.results import load_results

        return load_results
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
