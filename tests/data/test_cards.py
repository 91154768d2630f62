"""`bench-data list` with a broken card among good ones."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.data.cards import list_datasets
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
