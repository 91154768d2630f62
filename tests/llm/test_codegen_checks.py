"""What the harness finds in a generated module before running it: top-level script code is
dropped (and recorded), and a global `df`, the worked example's columns or unknown columns are
named as the error. The replies here are shaped like those Qwen2.5-Coder-1.5B wrote for the
callcenter table before the contract prompt (bench/llm/codegen_prompt.py)."""

from __future__ import annotations

import pytest

from bench.llm.codegen_checks import fingerprint, sanitise, static_problems
from bench.llm.codegen_prompt import EXAMPLE_COLUMNS, WORKED_EXAMPLE

COLUMNS = ["call_reason", "channel", "queue_wait_s", "hour_of_day"]
SCRIPT = """\
import pandas as pd
from sklearn.ensemble import RandomForestClassifier

SEED = 42
PARAMS = {"n_estimators": 100, "random_state": SEED}
df = pd.read_csv("callcenter.csv")
X = df.drop(columns=["resolved"])

def build_model():
    return RandomForestClassifier(**PARAMS)

model = build_model()
model.fit(X, df["resolved"])
print(model.score(X, df["resolved"]))
if __name__ == "__main__":
    print("done")
"""


def test_script_code_at_the_top_level_is_dropped_and_recorded() -> None:
    result = sanitise(SCRIPT)
    assert result.syntax_error is None
    assert result.dropped == [
        'line 6: df = pd.read_csv("callcenter.csv")',
        'line 7: X = df.drop(columns=["resolved"])',
        "line 12: model = build_model()",  # calls are not constants: dropped
        'line 13: model.fit(X, df["resolved"])',
        'line 14: print(model.score(X, df["resolved"]))',
        'line 15: if __name__ == "__main__": print("done")',
    ]
    namespace: dict = {}
    exec(compile(result.code, "program.py", "exec"), namespace)  # runs: no file is read
    assert namespace["build_model"]().get_params()["n_estimators"] == 100
    assert static_problems(result.code, COLUMNS) == []


def test_a_clean_module_is_left_as_it_is() -> None:
    code = WORKED_EXAMPLE.replace('"engine_hours", "crew_size"', '"queue_wait_s"')
    assert sanitise(code).code == code and sanitise(code).dropped == []


def test_an_assignment_from_an_undefined_name_or_a_file_is_dropped() -> None:
    code = "import numpy as np\nA = np.arange(3)\nB = data.shape\nC = np.load('w.npy')\n"
    assert [d.split(":")[0] for d in sanitise(code).dropped] == ["line 3", "line 4"]


def test_a_syntax_error_is_reported_not_sanitised() -> None:
    result = sanitise("def build_model(:\n    pass\n")
    assert result.syntax_error and result.syntax_error.startswith("SyntaxError")
    assert result.dropped == []
    assert static_problems("def build_model(:\n", COLUMNS)[0].startswith("SyntaxError")


def test_a_function_reading_a_global_df_is_named() -> None:
    code = (
        "from sklearn.linear_model import LogisticRegression\n"
        "def build_model():\n"
        "    model = LogisticRegression()\n"
        "    model.fit(df[FEATURES], df['y'])\n"
        "    return model\n"
    )
    (problem,) = static_problems(code, COLUMNS)
    assert "`FEATURES`, `df` without defining it" in problem and "fit(X, y)" in problem


def test_locals_parameters_builtins_and_module_names_are_not_globals() -> None:
    code = (
        "import numpy as np\nLIMIT = 3\n"
        "class Clip:\n    def fit(self, X, y):\n        self.classes_ = sorted(set(y))\n"
        "        return self\n"
        "def build_model(scale=1.0):\n    values = [np.abs(scale)] * LIMIT\n"
        "    return Clip() if len(values) else None\n"
    )
    assert static_problems(code, COLUMNS) == []


def test_a_copied_worked_example_is_caught_by_its_column_names() -> None:
    problems = static_problems(WORKED_EXAMPLE, COLUMNS, EXAMPLE_COLUMNS)
    (problem,) = problems
    assert "the worked example's columns" in problem
    for column in EXAMPLE_COLUMNS:
        assert column in problem


@pytest.mark.parametrize(
    "snippet",
    [
        'NUMERIC = ["queue_wait_s", "queue_wait"]',  # a list naming one real column
        'def build_model():\n    return lambda X: X["queue_wait"]',  # X["..."]
    ],
)
def test_unknown_column_names_are_named(snippet: str) -> None:
    problems = static_problems(snippet, COLUMNS)
    assert any("columns the table does not have: ['queue_wait']" in p for p in problems)


def test_strings_that_are_not_column_lists_are_not_columns() -> None:
    code = (
        "from sklearn.impute import SimpleImputer\nCLASSES = ['yes', 'no']\n"
        "def build_model():\n    return SimpleImputer(strategy='most_frequent')\n"
    )
    assert static_problems(code, COLUMNS) == []


def test_the_fingerprint_ignores_comments_and_layout_only() -> None:
    code = "def build_model():\n    return 1\n"
    assert fingerprint(code) == fingerprint("# same\ndef build_model():\n\n    return 1  # x\n")
    assert fingerprint(code) != fingerprint("def build_model():\n    return 2\n")


def test_a_reply_cut_off_by_the_token_limit_keeps_its_complete_statements() -> None:
    """Shaped like Qwen2.5-Coder-0.5B's replies: build_model repeated until max_tokens."""
    body = "def build_model():\n    return LogisticRegression(max_iter=1000)\n\n"
    code = (
        "from sklearn.linear_model import LogisticRegression\n\n" + body * 3 + body[:55]
    )  # cut inside the call
    result = sanitise(code)
    assert result.syntax_error is None
    assert result.code.count("def build_model") == 3 and result.code.rstrip().endswith("1000)")
    assert result.dropped[-1].startswith("lines 12-13: an unfinished statement")
    assert static_problems(result.code, COLUMNS) == []
    namespace: dict = {}
    exec(compile(result.code, "program.py", "exec"), namespace)
    assert namespace["build_model"]().max_iter == 1000


def test_a_reply_with_no_complete_build_model_stays_a_syntax_error() -> None:
    result = sanitise("import numpy as np\n\ndef build_model(:\n    return 1\n")
    assert result.syntax_error is not None and result.dropped == []
