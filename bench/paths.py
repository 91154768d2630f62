"""Where the project's folders are: configs, local datasets, results."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = PROJECT_ROOT / "conf"
DATASETS_DIR = PROJECT_ROOT / "datasets"


def resolve_project_path(path: str | Path) -> Path:
    """An absolute path; relative paths are taken from the project root, not the caller's cwd."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path
