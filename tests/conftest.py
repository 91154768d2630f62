"""Shared fixtures: real datasets loaded once per session, composed configs, a user conf dir.

Nothing here is mocked: tasks come from the dataset cards under conf/dataset/ through
`bench.data.load_task`, and configs from Hydra's compose API exactly as `bench-run` builds them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from omegaconf import DictConfig

from bench.config import compose_config
from bench.data.dataset import Task, load_task
from bench.methods.base import MethodContext
from bench.paths import CONF_DIR

# Mixed-type tables with missing values: NaNs in numerics (callcenter), in categoricals and
# numerics (credit_data).
MIXED_TABLES = ("callcenter", "credit_data")


@pytest.fixture(scope="session")
def load_dataset() -> Callable[[str], Task]:
    """Load a configured dataset by name, once per session (callers must not mutate it)."""
    cache: dict[str, Task] = {}

    def load(name: str) -> Task:
        if name not in cache:
            cache[name] = load_task(compose_config([f"dataset={name}"]).dataset)
        return cache[name]

    return load


@pytest.fixture(scope="session")
def callcenter_task(load_dataset: Callable[[str], Task]) -> Task:
    return load_dataset("callcenter")


@pytest.fixture(params=MIXED_TABLES)
def mixed_task(request: pytest.FixtureRequest, load_dataset: Callable[[str], Task]) -> Task:
    """Each test using this runs once per mixed-type table with missing values."""
    return load_dataset(request.param)


@pytest.fixture(scope="session")
def method_context() -> Callable[..., MethodContext]:
    """Build the context the runner gives a method: the task's metadata, never its data."""

    def build(task: Task, seed: int = 0, **settings: Any) -> MethodContext:
        return MethodContext.for_task(task, seed, **settings)

    return build


@pytest.fixture
def user_conf_dir(tmp_path: Path) -> Path:
    """A copy of conf/ a test may add its own cards to, as a user adds a dataset in one file."""
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    return conf


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    """A small user table: numeric, categorical and missing values, a yes/no target."""
    rows = 60
    frame = pd.DataFrame(
        {
            "customer_id": range(rows),
            "age": [20 + (i * 7) % 50 for i in range(rows)],
            "plan": [("basic", "plus", "pro")[i % 3] for i in range(rows)],
            "monthly_spend": [None if i % 10 == 0 else 10.0 + i for i in range(rows)],
            "refund_issued": [i % 2 for i in range(rows)],
            "churned": ["yes" if i % 3 == 0 else "no" for i in range(rows)],
        }
    )
    path = tmp_path / "customers.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def csv_card(small_csv: Path) -> Callable[..., dict]:
    """Build a dataset card (a plain dict) for a table shaped like `small_csv`."""

    def build(path: Path = small_csv, **overrides: object) -> dict:
        card: dict = {
            "name": "customers",
            "source": "csv",
            "params": {"path": str(path)},
            "description": "A user's own customer table.",
            "target": "churned",
            "positive_label": "yes",
            "label_names": {},
            "drop_columns": ["customer_id"],
            "leak_columns": ["refund_issued"],
            "keep_leak_columns": False,
            "features": {
                "age": {"type": "numeric", "description": "Customer age in years."},
                "plan": {"type": "categorical", "description": "Subscription plan."},
                "monthly_spend": {"type": "numeric", "description": "Spend per month (dollars)."},
            },
        }
        card.update(overrides)
        return card

    return build


@pytest.fixture
def compose_run(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose a bench-run config for an in-process `run_job`, results under tmp_path."""

    def compose(*overrides: str, conf_dir: Path = CONF_DIR) -> DictConfig:
        return compose_config(
            [*overrides, f"results_dir={tmp_path / 'results'}"], conf_dir=conf_dir
        )

    return compose


# The loopback LLM fixtures (a real server on 127.0.0.1 and a fault proxy), for every test.
from loopback import fault_proxy, llm_server, local_llm_cfg, openai_llm  # noqa: E402, F401
