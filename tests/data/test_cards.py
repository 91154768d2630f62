"""`bench-data list` with a broken card among good ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.data.cards import BrokenCardError, describe_dataset, list_datasets
from bench.paths import CONF_DIR


def test_a_broken_card_is_listed_as_broken_and_the_others_still_listed(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    card = (conf / "dataset" / "callcenter.yaml").read_text()
    (conf / "dataset" / "misspelt.yaml").write_text(
        card.replace("name: callcenter", "name: misspelt").replace("target:", "targt:", 1)
    )
    text = list_datasets(conf_dir=conf)
    broken = [line for line in text.splitlines() if line.startswith("misspelt ")]
    assert broken and "BROKEN" in broken[0]
    assert str(conf / "dataset" / "misspelt.yaml") in text
    assert "targt" in text  # the bad key is named
    for good in ("callcenter", "mlc_churn", "attrition"):
        assert any(
            line.startswith(f"{good} ") and "BROKEN" not in line for line in text.splitlines()
        )


def test_showing_a_broken_card_names_its_file_and_the_bad_key(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    card = (conf / "dataset" / "callcenter.yaml").read_text()
    (conf / "dataset" / "misspelt.yaml").write_text(card.replace("target:", "targt:", 1))
    # a ValueError, which bench-data reports in one line (exit 2) instead of a Hydra traceback
    with pytest.raises(BrokenCardError) as caught:
        describe_dataset("misspelt", conf_dir=conf)
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert str(conf / "dataset" / "misspelt.yaml") in message and "targt" in message
    assert "reference_type" not in message and "\n" not in message
    assert describe_dataset("callcenter", conf_dir=conf).startswith("callcenter:")


def test_show_says_how_many_rows_lost_their_target(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    rows = ["tenure,plan,churned"] + [
        f"{i},{('basic', 'pro')[i % 2]},{' ' if i in (4, 9) else ('yes', 'no')[i % 3 == 0]}"
        for i in range(40)
    ]
    data = tmp_path / "blank.csv"
    data.write_text("\n".join(rows) + "\n")
    (conf / "dataset" / "blanks.yaml").write_text(
        f"name: blanks\nsource: csv\nparams:\n  path: {data}\ndescription: Blank targets.\n"
        "target: churned\npositive_label: 'yes'\n"
    )
    text = describe_dataset("blanks", conf_dir=conf)
    assert "rows: 38 " in text
    assert "rows dropped: 2 (their target 'churned' is empty or blank)" in text
