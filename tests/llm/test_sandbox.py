"""run_program: a good program is cross-validated and predicts; a program that loops, eats memory,
opens a socket, reads or writes outside its directory, looks for an API key, shells out or
floods its output is stopped with a readable error, never an exception.

Every test runs a real sandboxed subprocess. The limits are small so that the misbehaving
programs end in seconds.
"""

from __future__ import annotations

import os
import socket
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.llm import sandbox
from bench.llm.sandbox import SandboxLimits, SandboxResult, run_program

LIMITS = SandboxLimits(wall_s=20, cpu_s=5, memory_mb=2048, output_mb=1)
FAKE_KEY = "sk-fake-0123456789-do-not-leak"


def separable(n: int = 40) -> tuple[pd.DataFrame, pd.Series]:
    """`a` decides the class ("yes" when a > 0); `b` is noise."""
    a = np.linspace(-1, 1, n + 1)
    a = a[a != 0][:n]
    b = np.random.default_rng(0).normal(size=n)
    return pd.DataFrame({"a": a, "b": b}), pd.Series(np.where(a > 0, "yes", "no"))


def program(body: str, model: str = "LogisticRegression()") -> str:
    """A module whose build_model() runs `body` first, then returns `model`."""
    return (
        "from sklearn.linear_model import LogisticRegression\n\n"
        "def build_model():\n"
        + textwrap.indent(textwrap.dedent(body).strip() or "pass", "    ")
        + f"\n    return {model}\n"
    )


def run(source: str, limits: SandboxLimits = LIMITS, **options: object) -> SandboxResult:
    X, y = separable()
    return run_program(source, X, y, limits=limits, **options)  # type: ignore[arg-type]


def assert_stopped(result: SandboxResult, *phrases: str) -> None:
    """A readable failure: not ok, an error naming what happened, no score."""
    assert not result.ok, result.summary()
    assert isinstance(result.error, str) and result.error.strip()
    for phrase in phrases:
        assert phrase in result.error, result.error
    assert result.cv_score is None and result.proba is None


# -- what works ------------------------------------------------------------------------------


def test_a_good_program_is_cross_validated_and_scored() -> None:
    # It also does what a program may: write in its own directory and TMPDIR, and print.
    source = program(
        """
        import tempfile
        with open("scratch.txt", "w") as handle:
            handle.write("notes")
        assert open("scratch.txt").read() == "notes"
        with tempfile.NamedTemporaryFile("w") as handle:
            handle.write("more notes")
        for i in range(300):  # 300 kB of output: under the limit, only its tail is kept
            print(f"{i:06d}" + "y" * 1000)
        """
    )
    result = run(source, metric="roc_auc", positive_label="yes")
    assert result.ok, result.error
    assert result.error is None
    assert len(result.fold_scores) == 5
    assert result.cv_score == pytest.approx(np.mean(result.fold_scores))
    assert result.cv_score > 0.95  # `a` separates the classes: a broken scorer would not get here
    assert len(result.stdout_tail) == sandbox.TAIL_CHARS
    assert "000299" in result.stdout_tail and "000000" not in result.stdout_tail
    summary = result.summary()
    assert summary["ok"] and summary["cv_score"] == result.cv_score
    assert "proba" not in summary
    assert summary["isolation"] == ("bubblewrap" if sandbox.confinement_available() else "none")


def test_accuracy_is_scored_when_asked_for() -> None:
    """A model that always says "no" (the majority) scores, as accuracy, the share of "no" rows
    (about 0.75 here), where its ROC AUC would be 0.5."""
    X, y = separable()
    y = pd.Series(np.where(X["a"] > 0.5, "yes", "no"))
    always_no = program("from sklearn.dummy import DummyClassifier", "DummyClassifier()")
    accuracy = run_program(always_no, X, y, metric="accuracy", limits=LIMITS)
    assert accuracy.ok, accuracy.error
    assert accuracy.cv_score == pytest.approx((y == "no").mean(), abs=0.05)


def test_predict_mode_returns_probabilities_in_the_order_of_the_models_classes() -> None:
    """The model's classes_ are deliberately not sorted: the harness aligns its columns to the
    training labels' sorted classes, so the order a program reports cannot mislabel them."""
    source = textwrap.dedent(
        """
        import numpy as np
        from sklearn.base import BaseEstimator, ClassifierMixin

        class Rule(ClassifierMixin, BaseEstimator):
            def fit(self, X, y):
                self.classes_ = np.array(["yes", "no"])
                return self

            def predict_proba(self, X):
                yes = np.where(X["a"].to_numpy() > 0, 0.9, 0.2)
                return np.column_stack([yes, 1 - yes])

        def build_model():
            return Rule()
        """
    )
    X, y = separable()
    X_test = pd.DataFrame({"a": [-0.5, 0.5, 0.7], "b": [0.0, 0.0, 0.0]})
    result = run_program(source, X, y, X_test, limits=LIMITS)
    assert result.ok, result.error
    assert result.classes == ["no", "yes"]
    np.testing.assert_allclose(result.proba, [[0.8, 0.2], [0.1, 0.9], [0.1, 0.9]])
    assert result.cv_score is None and result.fold_scores == []


def test_predict_mode_with_lightgbm_and_with_a_predict_only_model() -> None:
    X, y = separable()
    X_test = pd.DataFrame({"a": [-0.9, 0.9, -0.8, 0.8], "b": [0.0] * 4})
    truth = ["no", "yes", "no", "yes"]
    lgbm = program(
        "from lightgbm import LGBMClassifier",
        "LGBMClassifier(n_estimators=20, min_child_samples=2, verbose=-1)",
    )
    result = run_program(lgbm, X, y, X_test, limits=LIMITS)
    assert result.ok, result.error
    assert result.classes == ["no", "yes"]
    assert result.proba.shape == (4, 2)
    np.testing.assert_allclose(result.proba.sum(axis=1), 1.0)
    assert [result.classes[i] for i in result.proba.argmax(axis=1)] == truth

    # No predict_proba: one-hot columns of the predicted classes, in sorted order.
    predict_only = textwrap.dedent(
        """
        import numpy as np

        class Sign:
            def fit(self, X, y):
                return self

            def predict(self, X):
                return np.where(X["a"].to_numpy() > 0, "yes", "no")

        def build_model():
            return Sign()
        """
    )
    result = run_program(predict_only, X, y, X_test, limits=LIMITS)
    assert result.ok, result.error
    assert result.classes == ["no", "yes"]
    np.testing.assert_array_equal(result.proba, [[1, 0], [0, 1], [1, 0], [0, 1]])


def test_too_few_rows_of_a_class_to_cross_validate_is_ok_without_a_score() -> None:
    X, y = separable(8)
    y = pd.Series(["no"] * 7 + ["yes"])  # one "yes": not even two folds
    result = run_program(program(""), X, y, limits=LIMITS)
    assert result.ok, result.error
    assert result.cv_score is None
    assert result.fold_scores == []


def test_the_test_labels_never_reach_the_sandbox() -> None:
    """The program reads every file of its directory and fails if the test rows' labels (or a
    label column) are anywhere in them. Handing it the test rows *with* their labels shows that
    it would notice."""
    X, y = separable()
    X_test = pd.DataFrame({"a": [-0.4, 0.3, 0.6, -0.2, 0.1], "b": [1.0] * 5})
    y_test = ["no", "yes", "yes", "no", "yes"]
    source = textwrap.dedent(
        f"""
        import os
        import pandas as pd
        from sklearn.linear_model import LogisticRegression

        HIDDEN = {y_test!r}

        def build_model():
            for name in sorted(os.listdir(".")):
                if not os.path.isfile(name):
                    continue
                open(name, "rb").read()  # every file is readable: nothing is hidden by luck
                if not name.endswith(".parquet"):
                    continue
                frame = pd.read_parquet(name)
                if name != "train.parquet" and {{"label", "__target__"}} & set(frame.columns):
                    raise RuntimeError(f"LEAK: {{name}} has a label column")
                for column in frame.columns:
                    if frame[column].astype(str).tolist() == HIDDEN:
                        raise RuntimeError(f"LEAK: column {{column}} of {{name}}")
            print("looked at", sorted(os.listdir(".")))
            return LogisticRegression()
        """
    )
    result = run_program(source, X, y, X_test, limits=LIMITS)
    assert result.ok, result.error
    assert "rows.parquet" in result.stdout_tail and "train.parquet" in result.stdout_tail
    assert [result.classes[i] for i in result.proba.argmax(axis=1)] == y_test

    leaked = X_test.assign(label=y_test)
    caught = run_program(source, X, y, leaked, limits=LIMITS)
    assert_stopped(caught, "LEAK")


# -- what is stopped -------------------------------------------------------------------------


def test_a_program_that_loops_forever_is_stopped_at_the_cpu_limit() -> None:
    limits = SandboxLimits(wall_s=30, cpu_s=2, memory_mb=2048)
    result = run(program("while True:\n    pass"), limits=limits)
    assert_stopped(result, "CPU-time limit of 2 s", "sandbox.cpu_s")
    assert result.seconds < 30


def test_a_program_that_sleeps_forever_is_stopped_at_the_wall_clock_limit() -> None:
    limits = SandboxLimits(wall_s=3, cpu_s=60, memory_mb=2048)
    result = run(program("import time\nwhile True:\n    time.sleep(0.2)"), limits=limits)
    assert_stopped(result, "timed out after 3 s", "sandbox.wall_s")
    assert 3 <= result.seconds < 15


def test_a_program_that_allocates_too_much_memory_is_stopped() -> None:
    grow = "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 * 1024))"
    result = run(program(grow))
    assert_stopped(result, "memory limit of 2048 MB")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP socket of the test process on the loopback interface, waiting for connections."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    yield server
    server.close()


@pytest.mark.parametrize("namespace", [True, False], ids=["namespace", "audit-hook-only"])
def test_a_program_that_opens_a_network_socket_is_stopped(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch, namespace: bool
) -> None:
    if namespace and not sandbox.confinement_available():
        pytest.skip("this host gives unprivileged processes no network namespace")
    if not namespace:  # the audit hook must stop it on its own, as on hosts without namespaces
        monkeypatch.setattr(sandbox, "confinement_available", lambda: False)
    port = listener.getsockname()[1]
    source = program(
        f"""
        import socket
        with socket.create_connection(("127.0.0.1", {port}), timeout=3) as connection:
            connection.sendall(b"rows")
        """
    )
    result = run(source)
    assert_stopped(result, "sandbox: socket")
    assert (result.isolation == "bubblewrap") is namespace
    with pytest.raises(BlockingIOError):  # nobody connected
        listener.accept()


@pytest.mark.parametrize("where", ["absolute", "relative"])
def test_a_program_that_reads_a_file_outside_its_directory_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    # The sandbox's temporary folder is made under tmp_path and the program runs in its work/
    # subfolder, so "../../secret.txt" is tmp_path/secret.txt.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    secret = tmp_path / "secret.txt"
    secret.write_text("the-secret-value")
    path = str(secret) if where == "absolute" else "../../secret.txt"
    result = run(program(f"print(open({path!r}).read())"))
    assert_stopped(result, "sandbox: the program may not open", str(secret))
    assert "the-secret-value" not in result.stdout_tail + result.stderr_tail + result.error


def test_an_api_key_in_the_parents_environment_is_invisible(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("BENCH_TEST_TOKEN", FAKE_KEY)
    source = program(
        f"""
        import os
        print("variables:", sorted(os.environ))
        found = [name for name, value in os.environ.items() if {FAKE_KEY!r} in value]
        if found:
            raise RuntimeError(f"LEAK: {{found}}")
        """
    )
    result = run(source)
    assert result.ok, result.error
    assert "variables:" in result.stdout_tail  # the program did look
    assert "OPENAI_API_KEY" not in result.stdout_tail
    assert "BENCH_TEST_TOKEN" not in result.stdout_tail
    assert os.environ["OPENAI_API_KEY"] == FAKE_KEY  # set where the sandbox was started


def test_the_parents_environment_cannot_be_read_through_proc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    result = run(program(f"print(open('/proc/{os.getpid()}/environ', 'rb').read())"))
    assert_stopped(result, "sandbox: the program may not open", f"/proc/{os.getpid()}/environ")
    assert FAKE_KEY not in result.stdout_tail + result.stderr_tail + result.error


def test_a_program_that_writes_outside_its_directory_is_stopped(tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    result = run(program(f"open({str(target)!r}, 'w').write('out')"))
    assert_stopped(result, "sandbox: the program may not open", str(target))
    assert not target.exists()


@pytest.mark.parametrize(
    ("call", "event"),
    [
        ("import subprocess\nsubprocess.run(['touch', {marker!r}])", "subprocess.Popen"),
        ("import os\nos.system('touch {marker}')", "os.system"),
        ("import multiprocessing\nmultiprocessing.Process(target=print).start()", "os.fork"),
    ],
    ids=["subprocess", "os.system", "multiprocessing"],
)
def test_a_program_that_starts_a_process_is_stopped(tmp_path: Path, call: str, event: str) -> None:
    marker = tmp_path / "ran"
    result = run(program(call.format(marker=str(marker))))
    assert_stopped(result, f"sandbox: {event} is not allowed")
    assert not marker.exists()


def test_megabytes_of_output_are_stopped_and_only_their_tail_is_kept() -> None:
    result = run(program("for i in range(5000):\n    print(f'{i:06d}' + 'x' * 1000)"))
    assert_stopped(result, "wrote more than 1 MB", "sandbox.output_mb")
    assert len(result.stdout_tail) <= sandbox.TAIL_CHARS
    summary = result.summary()
    assert len(summary["stdout_tail"]) <= 1000 and len(summary["stderr_tail"]) <= 1000


@pytest.mark.parametrize(
    ("source", "phrase"),
    [
        ("from sklearn.linear_model import LogisticRegression\n", "does not define a function"),
        (program("", model="'a model'"), "build_model() returned str, which has no fit()"),
        ("def build_model(:\n    pass\n", "SyntaxError"),
    ],
    ids=["no-build_model", "no-fit", "syntax-error"],
)
def test_a_broken_program_is_a_readable_failure(source: str, phrase: str) -> None:
    result = run(source)
    assert_stopped(result, phrase)
    assert len(result.error) <= 3000
    assert "program.py" in result.error or "build_model" in result.error


# -- libraries that open files in C++ (pyarrow): stopped by the confined file system --------


def test_reading_parquet_outside_the_directory_is_stopped(tmp_path: Path) -> None:
    secret = tmp_path / "secret.parquet"
    pd.DataFrame({"key": ["the-secret-value"]}).to_parquet(secret)
    result = run(program(f"import pandas as pd\nprint(pd.read_parquet({str(secret)!r}))"))
    if not sandbox.confinement_available():
        pytest.skip("without namespaces only Python-level file access is guarded")
    assert "the-secret-value" not in result.stdout_tail
    assert not result.ok and "FileNotFoundError" in result.error  # not in the sandbox's world


def test_writing_parquet_outside_the_directory_is_stopped(tmp_path: Path) -> None:
    target = tmp_path / "escaped.parquet"
    source = program(f"import pandas as pd\npd.DataFrame({{'x': [1]}}).to_parquet({str(target)!r})")
    if not sandbox.confinement_available():
        pytest.skip("without namespaces only Python-level file access is guarded")
    result = run(source)
    assert not target.exists()
    assert not result.ok
