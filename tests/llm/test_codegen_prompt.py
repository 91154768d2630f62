"""The codegen prompt states the task, the schema, the class balance and the rules; candidates
ask for different approaches; extract_code finds the program in a reply."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.llm.codegen_prompt import (
    ALLOWED_IMPORTS,
    APPROACHES,
    EXAMPLE_COLUMNS,
    WORKED_EXAMPLE,
    codegen_prompt,
    extract_code,
    failing_line,
    repair_prompt,
    schema_lines,
)

PROGRAM = """\
from sklearn.dummy import DummyClassifier

def build_model():
    return DummyClassifier()
"""


@pytest.fixture
def table() -> tuple[pd.DataFrame, pd.Series]:
    X = pd.DataFrame(
        {
            "age": [30, 41, np.nan, 25],
            "plan": ["basic", "pro", "basic", None],
            "score": [0.125, 2.5, 3.0, 1.0],
            "empty": [np.nan] * 4,
        }
    )
    return X, pd.Series(["yes", "no", "yes", "yes"])


def prompt(table: tuple[pd.DataFrame, pd.Series], **options: object) -> str:
    X, y = table
    defaults: dict = {
        "target": "churned",
        "task_description": "Predict  whether\n a customer churns.",
        "metric": "ROC AUC",
        "descriptions": {"age": "Age in\n years.", "plan": "Subscription plan."},
        "example_rows": 2,
    }
    return codegen_prompt(X, y, **{**defaults, **options})


def test_schema_lines_give_dtype_missing_rate_description_and_examples(
    table: tuple[pd.DataFrame, pd.Series],
) -> None:
    X, _ = table
    lines = schema_lines(X, {"age": "Age in\n years.", "plan": "Subscription plan."})
    assert lines == [
        "- age (float64, 25% missing): Age in years.; e.g. 30, 41, 25",
        f"- plan ({X['plan'].dtype}, 25% missing): Subscription plan.; e.g. basic, pro",
        "- score (float64, 0% missing); e.g. 0.125, 2.5, 3",
        "- empty (float64, 100% missing)",  # no examples to give
    ]
    assert schema_lines(X, examples=1)[0] == "- age (float64, 25% missing); e.g. 30"


def test_the_prompt_states_task_schema_balance_rules_and_examples(
    table: tuple[pd.DataFrame, pd.Series],
) -> None:
    text = prompt(table)
    assert "Task: Predict whether a customer churns." in text  # whitespace collapsed
    assert "Target: `churned`" in text
    assert "yes 75%, no 25%" in text  # the class balance, majority first
    assert "Metric: ROC AUC (higher is better)" in text
    assert "Training rows: 4." in text
    for line in schema_lines(table[0], {"age": "Age in\n years.", "plan": "Subscription plan."}):
        assert line in text
    # Two example rows as CSV, with the target column last.
    assert "age,plan,score,empty,churned\n30.0,basic,0.125,,yes\n41.0,pro,2.5,,no\n\n" in text
    assert ",yes\n25.0" not in text  # the third row is not shown
    assert f"Import only: {ALLOWED_IMPORTS}." in text
    for module in ("numpy", "pandas", "sklearn", "xgboost", "lightgbm"):
        assert module in ALLOWED_IMPORTS
    assert "No files, network, environment variables or subprocesses" in text
    assert "`build_model()`" in text and "UNFITTED" in text and "predict_proba(X)" in text
    assert text.rstrip().endswith("```python code block.")


def test_no_task_description_leaves_no_empty_task_line(
    table: tuple[pd.DataFrame, pd.Series],
) -> None:
    text = prompt(table, task_description="")
    assert "Task:" not in text
    assert "\n\n\n" not in text.replace(WORKED_EXAMPLE, "")  # (the example is PEP 8 code)


def test_candidates_ask_for_different_approaches(table: tuple[pd.DataFrame, pd.Series]) -> None:
    prompts = [prompt(table, candidate=i) for i in range(len(APPROACHES))]
    assert len(set(prompts)) == len(APPROACHES)
    assert prompts[0] == prompt(table)  # the first candidate is the plain request
    for i, approach in enumerate(APPROACHES[1:], start=1):
        assert approach in prompts[i]
        assert all(approach not in other for j, other in enumerate(prompts) if j != i)
        # Everything else is the same request.
        assert prompts[i].replace(f"\n\n{approach}", "") == prompts[0]


def test_every_candidate_asks_something_new(table: tuple[pd.DataFrame, pd.Series]) -> None:
    n_candidates = len(APPROACHES) + 2
    assert len({prompt(table, candidate=i) for i in range(n_candidates)}) == n_candidates


def test_the_repair_prompt_holds_the_request_the_code_and_the_end_of_the_error(
    table: tuple[pd.DataFrame, pd.Series],
) -> None:
    original = prompt(table)
    error = "Traceback (most recent call last):\n" + "x" * 5000 + "\nValueError: bad column"
    text = repair_prompt(original, PROGRAM + "\n\n", error)
    assert text.startswith(original)
    assert f"```python\n{PROGRAM.strip()}\n```" in text
    assert "ValueError: bad column" in text
    assert "Traceback" not in text  # only the last 2,000 characters of the error
    assert "complete corrected module" in text


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (f"Here it is:\n```python\n{PROGRAM}```\nDone.", PROGRAM),
        (f"```\n{PROGRAM}```", PROGRAM),  # a fence without a language
        (f"```py\n{PROGRAM}```", PROGRAM),
        (f"```Python  \n{PROGRAM}```", PROGRAM),
        (f"```python\n{PROGRAM}", PROGRAM),  # cut off at max_tokens: no closing fence
        (PROGRAM, PROGRAM),  # no fence, but it defines build_model
        ("I cannot write code for this task.", None),
        ("Use `LogisticRegression` from sklearn.", None),
        ("", None),
    ],
    ids=[
        "fenced",
        "bare-fence",
        "py",
        "Python",
        "unclosed",
        "unfenced",
        "prose",
        "inline",
        "empty",
    ],
)
def test_extract_code(reply: str, expected: str | None) -> None:
    assert extract_code(reply) == expected


def test_extract_code_prefers_the_block_that_defines_build_model() -> None:
    helper = "import numpy as np\n" + "# a long helper block\n" * 20
    reply = f"Helpers:\n```python\n{helper}```\nThe model:\n```python\n{PROGRAM}```\n"
    assert extract_code(reply) == PROGRAM
    # Without build_model anywhere: the longest block (it may still be repaired).
    short = "x = 1\n"
    assert extract_code(f"```python\n{short}```\n```python\n{helper}```") == helper
    # Several blocks define it: the longest one.
    longer = PROGRAM + "\n# tuned\n"
    assert extract_code(f"```python\n{PROGRAM}```\n```python\n{longer}```") == longer


@pytest.mark.parametrize(
    "reply",
    [
        f"Install it:\n```bash\npip install lightgbm\n```\nThen:\n```python\n{PROGRAM}```\n",
        f"```python3\n{PROGRAM}```",
    ],
    ids=["bash-block-first", "python3"],
)
def test_extract_code_with_other_language_tags(reply: str) -> None:
    assert extract_code(reply) == PROGRAM


def test_the_prompt_states_the_contract_and_a_worked_example_for_another_table(
    table: tuple[pd.DataFrame, pd.Series],
) -> None:
    text = prompt(table)
    assert "`build_model()` with no arguments" in text
    assert "model = build_model(); model.fit(X, y); model.predict_proba(X_new)" in text
    assert "There is no global data: no `df`" in text and "no example usage" in text
    assert f"```python\n{WORKED_EXAMPLE}```" in text
    for column in EXAMPLE_COLUMNS:  # the example's table is not this one
        assert column in WORKED_EXAMPLE and column not in table[0].columns
    # The example comes before the task, whose own columns follow as ready-made lists.
    assert text.index(WORKED_EXAMPLE) < text.index("Your task.") < text.index("NUMERIC = ['age'")
    assert "NUMERIC = ['age', 'score', 'empty']\nTEXT = ['plan']" in text
    exec(compile(WORKED_EXAMPLE, "example.py", "exec"), {})  # the example itself is valid


def test_the_failing_line_is_the_programs_last_frame() -> None:
    code = "import numpy as np\n\ndef build_model():\n    return np.nothing()\n"
    error = (
        'Traceback (most recent call last):\n  File "program.py", line 3, in <module>\n'
        '  File "program.py", line 4, in build_model\n'
        '  File "/usr/lib/numpy/__init__.py", line 9, in __getattr__\n'
        "AttributeError: module 'numpy' has no attribute 'nothing'\n"
    )
    assert failing_line(code, error) == "line 4: return np.nothing()"
    assert failing_line(code, "timed out after 60 s") is None
    assert failing_line(code, 'File "program.py", line 99') is None  # not a line of this code


def test_repair_rounds_ask_for_different_things(table: tuple[pd.DataFrame, pd.Series]) -> None:
    original = prompt(table)
    error = 'Traceback:\n  File "program.py", line 4, in build_model\nValueError: bad column\n'
    first = repair_prompt(original, PROGRAM, error, round_=1)
    second = repair_prompt(original, PROGRAM, error, round_=2)
    assert "It failed at line 4: return DummyClassifier()" in first
    assert "Do not send the same code again" in first
    assert "simpler module" in second and "Do not send the same code again" not in second
    assert repair_prompt(original, PROGRAM, error, round_=5).endswith(second[-80:])
