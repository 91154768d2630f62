"""The program that runs *inside* the sandbox (bench/llm/sandbox.py starts it; never import it).

It is a standalone script, started as ``python -I sandbox_child.py WORKDIR FD`` in a fresh process
(under bubblewrap where available), so that it imports nothing from the harness. It reads
``job.json``, the training rows with their labels (``train.parquet``) and the rows to predict,
*features only* (``rows.parquet``: a validation fold's or the test rows'; their labels never
reach the sandbox), installs an audit hook, runs ``program.py``, fits ``build_model()`` and
sends the probabilities (with their classes) or the error through the file descriptor
named by its second argument.
Scores are computed by the harness from the probabilities, outside.

The hook stops accidents and naive misbehaviour of generated code; the boundary against code
written to escape is bubblewrap's confinement and the limits set by bench/llm/sandbox.py.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

TARGET = "__target__"  # the label column of train.parquet
BLOCKED_EVENTS = {
    "socket.__new__",
    "socket.connect",
    "socket.bind",
    "socket.getaddrinfo",
    "socket.sendto",
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "pty.spawn",
    "os.kill",
    "os.killpg",
    "webbrowser.open",
}
WRITE_EVENTS = {  # events whose first argument is a path the program changes
    "os.remove",
    "os.rename",
    "os.rmdir",
    "os.mkdir",
    "os.chmod",
    "os.chown",
    "os.link",
    "os.symlink",
    "os.truncate",
    "os.utime",
    "shutil.rmtree",
    "shutil.copyfile",
    "shutil.move",
}
LIST_EVENTS = {"os.listdir", "os.scandir", "glob.glob"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def main() -> int:
    workdir = Path(sys.argv[1]).resolve()
    os.chdir(workdir)
    # The one way out: a file the harness opened outside the sandbox and handed over by number
    # (confined, the work directory is a scratch tmpfs that vanishes; no host path is writable).
    channel = os.fdopen(int(sys.argv[2]), "wb")
    job = json.loads(Path("job.json").read_text())
    try:
        import io

        import numpy as np
        import pandas as pd

        # mode "fit" sends the fitted model back pickled, "predict" loads it (model.pkl) and
        # predicts; the default fits and predicts in one process (bench/llm/sandbox_model.py)
        mode = job.get("mode", "fit_predict")
        if mode != "predict":
            train = pd.read_parquet("train.parquet")
            y = train.pop(TARGET).astype(str)
        if mode != "fit":
            rows = pd.read_parquet("rows.parquet")  # features only: their labels stay outside
        _install_guard(workdir, job["read_roots"])
        if mode == "predict":
            _program(Path("program.py").read_text())  # its classes, for unpickling the model
            model = _unpickle(Path("model.pkl").read_bytes())
        else:
            model = _build(Path("program.py").read_text())
            model.fit(train, y)
        if mode == "fit":
            _send(channel, {"classes": sorted(set(y))}, _pickle(model))
            return 0
        proba, classes = _proba(model, rows)
        buffer = io.BytesIO()
        np.save(buffer, proba, allow_pickle=False)
        _send(channel, {"classes": classes}, buffer.getvalue())
        return 0
    except BaseException as error:  # everything, MemoryError and SystemExit included, is reported
        # The program's own frames only (the harness's are noise to a reader and to the LLM),
        # with the random directory written as ".", so that the same failure always reads the
        # same (a repair request quoting it is then served from the request cache on a rerun).
        summary = traceback.TracebackException.from_exception(error)
        summary.stack = traceback.StackSummary.from_list(
            [frame for frame in summary.stack if not frame.filename.endswith("sandbox_child.py")]
        )
        text = "".join(summary.format()).replace(str(workdir), ".")
        message = str(error)[:2000].replace(str(workdir), ".")
        _send(channel, {"error": {"type": type(error).__name__, "message": message, "tb": text}})
        return 1


def _send(channel, header: dict, payload: bytes = b"") -> None:
    """One JSON line, then the probabilities as .npy bytes (bench/llm/sandbox.py reads it)."""
    channel.seek(0)
    channel.truncate()
    channel.write(json.dumps(header).encode() + b"\n" + payload)
    channel.flush()


def _program(source: str):
    """The program run as the module `generated_program`, registered so that pickle finds the
    classes it defines."""
    import types

    module = types.ModuleType("generated_program")
    sys.modules[module.__name__] = module
    exec(compile(source, "program.py", "exec"), module.__dict__)
    return module


def _pickle(model) -> bytes:
    """The fitted model as bytes (cloudpickle, as joblib ships it, keeps lambdas too)."""
    try:
        from joblib.externals import cloudpickle as pickler
    except ImportError:
        import pickle as pickler
    return pickler.dumps(model)


def _unpickle(data: bytes):
    import pickle

    return pickle.loads(data)


def _build(source: str):
    build = getattr(_program(source), "build_model", None)
    if not callable(build):
        raise ValueError("the program does not define a function build_model()")
    model = build()
    if not hasattr(model, "fit") or not (
        hasattr(model, "predict_proba") or hasattr(model, "predict")
    ):
        raise TypeError(
            f"build_model() returned {type(model).__name__}, which has no fit() and "
            "predict_proba()/predict() methods"
        )
    return model


def _proba(model, X):
    """Class probabilities in the order of the model's classes (one-hot from predict())."""
    import numpy as np

    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X), dtype=float)
        classes = [str(c) for c in getattr(model, "classes_", [])]
        if len(classes) != proba.shape[1]:
            raise ValueError(
                f"predict_proba returned {proba.shape[1]} columns but model.classes_ has "
                f"{len(classes)} entries"
            )
        return proba, classes
    predicted = np.asarray(model.predict(X)).astype(str)
    classes = sorted(set(predicted))
    return (predicted[:, None] == np.array(classes)[None, :]).astype(float), classes


def _install_guard(workdir: Path, read_roots: list[str]) -> None:
    own_proc = f"/proc/{os.getpid()}"
    readable = [*read_roots, own_proc, "/proc/cpuinfo", "/proc/meminfo", "/proc/stat"]
    workdir_text = str(workdir)

    def inside(path: str, roots: list[str]) -> bool:
        return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)

    def resolve(raw) -> str:
        return os.path.realpath(os.fsdecode(raw))

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            raw, mode, flags = args
            if raw is None or isinstance(raw, int):
                return
            path = resolve(raw)
            if inside(path, [workdir_text]):
                return
            writing = any(c in str(mode or "") for c in "wax+") or bool((flags or 0) & WRITE_FLAGS)
            if not writing and inside(path, readable):
                return
            raise PermissionError(f"sandbox: the program may not open {path}")
        if event in BLOCKED_EVENTS:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event in WRITE_EVENTS or event in LIST_EVENTS:
            target = args[0] if args else None
            if target is None or isinstance(target, int):
                return
            path = resolve(target)
            allowed = [workdir_text] if event in WRITE_EVENTS else [workdir_text, *readable]
            if not inside(path, allowed):
                raise PermissionError(f"sandbox: {event} on {path} is not allowed")
        if event == "ctypes.dlopen":
            name = args[0]
            if name is None or not inside(resolve(name), readable):
                raise PermissionError(f"sandbox: loading the library {name!r} is not allowed")

    sys.addaudithook(hook)


if __name__ == "__main__":
    sys.exit(main())
