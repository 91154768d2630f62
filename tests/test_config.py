"""Configs: every option of every group composes, and typos fail at composition time."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from bench.config import check_choice, compose_config, config_names
from bench.registry import METHODS, SOURCES, UnknownNameError
from bench.report.runs import FAMILY_ORDER

GROUPS = ("dataset", "method", "experiment")
FAMILIES = FAMILY_ORDER  # the families the report knows how to order and colour


@pytest.mark.parametrize(
    ("group", "name"), [(group, name) for group in GROUPS for name in config_names(group)]
)
def test_every_config_option_composes(group: str, name: str) -> None:
    cfg = compose_config([f"{group}={name}"])
    # Everything a run reads must resolve (interpolations such as results_dir included).
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert resolved["dataset"]["name"]
    assert resolved["method"]["name"]
    if group != "experiment":
        # The file name is the name users type and results are filed under.
        assert resolved[group]["name"] == name


def test_every_group_has_options() -> None:
    for group in GROUPS:
        assert config_names(group), f"conf/{group}/ has no options"


@pytest.mark.parametrize("name", config_names("method"))
def test_method_configs_point_at_registered_kinds(name: str) -> None:
    method = compose_config([f"method={name}"]).method
    assert method.kind in METHODS or ":" in method.kind
    assert method.family in FAMILIES
    if method.tune:
        assert method.search, f"method {name} is tuned but has no search grid"
        # A tuned variant searches over its base method's parameters.
        assert name.endswith("_tuned")


@pytest.mark.parametrize("name", config_names("dataset"))
def test_dataset_configs_point_at_registered_sources(name: str) -> None:
    dataset = compose_config([f"dataset={name}"]).dataset
    assert dataset.source in SOURCES
    assert dataset.target not in dataset.features
    assert " ".join(dataset.description.split()), f"dataset {name} has no description"


def test_command_line_values_override_the_defaults() -> None:
    cfg = compose_config(
        [
            "dataset=callcenter",
            "method=logreg",
            "seeds=[5]",
            "n_train=[8,all]",
            "split.test_size=0.3",
        ]
    )
    assert cfg.dataset.name == "callcenter"
    assert cfg.method.name == "logreg"
    assert list(cfg.seeds) == [5]
    assert list(cfg.n_train) == [8, "all"]
    assert cfg.split.test_size == 0.3


@pytest.mark.parametrize(
    "override",
    ["split.tset_size=0.3", "dataset.tagret=resolved", "method.tunne=true", "seedz=[0]"],
)
def test_misspelt_key_in_an_override_fails_at_composition(override: str) -> None:
    key = override.partition("=")[0]
    with pytest.raises(ConfigCompositionException, match=key.replace(".", r"\.")):
        compose_config([override])


def test_wrongly_typed_value_fails_at_composition() -> None:
    with pytest.raises(ConfigCompositionException, match=r"split\.test_size"):
        compose_config(["split.test_size=a_third"])


def test_misspelt_key_in_a_yaml_card_fails_and_names_it(user_conf_dir: Path) -> None:
    (user_conf_dir / "dataset" / "mine.yaml").write_text(
        "name: mine\nsource: csv\nparams: {path: mine.csv}\ntarget: y\n"
        "features:\n  age: {type: numeric, descripton: Age in years.}\n"
    )
    with pytest.raises(ConfigCompositionException, match=r"descripton"):
        compose_config(["dataset=mine"], conf_dir=user_conf_dir)


def test_a_card_added_as_one_file_composes_with_schema_defaults(user_conf_dir: Path) -> None:
    (user_conf_dir / "dataset" / "mine.yaml").write_text(
        "name: mine\nsource: csv\nparams: {path: mine.csv}\ntarget: y\n"
    )
    assert "mine" in config_names("dataset", user_conf_dir)
    dataset = compose_config(["dataset=mine"], conf_dir=user_conf_dir).dataset
    assert list(dataset.leak_columns) == []
    assert dataset.keep_leak_columns is False
    assert dataset.positive_label is None


def test_check_choice_suggests_the_closest_name() -> None:
    with pytest.raises(UnknownNameError) as caught:
        check_choice("method", "xgbost")
    message = str(caught.value)
    assert "Did you mean 'xgboost'?" in message
    assert "`method`" in message  # the config key involved
    for name in config_names("method"):
        assert name in message


def test_check_choice_accepts_every_existing_option() -> None:
    for group in GROUPS:
        for name in config_names(group):
            check_choice(group, name)


def test_an_ad_hoc_run_is_not_inside_the_quick_experiment() -> None:
    cfg = compose_config(["dataset=callcenter", "method=lightgbm"])
    assert cfg.experiment_name == "adhoc"
    assert cfg.results_dir == "results/adhoc"
    assert cfg.split.max_test_rows == 1000  # the protocol's test size, not quick's 100
    quick = compose_config(["experiment=quick"])
    assert (quick.experiment_name, quick.split.max_test_rows) == ("quick", 100)
