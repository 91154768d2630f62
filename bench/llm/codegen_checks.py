"""What the harness checks in a generated module before it spends a sandbox run on it.

Small models write whole scripts: "example usage" that reads a CSV, a global `df`, a training
loop at import. `sanitise` keeps only what a model module needs at its top level (imports,
function and class definitions, assignments computed from constants and the module's own names)
and records every statement it drops; a reply cut off mid-statement by the token limit keeps
its complete statements. `static_problems` then names what cannot work: no
`build_model`, a function reading a global the module never defines (`df`), or column names the
table does not have, such as a copy of the prompt's worked example. Each problem is an error the
repair prompt quotes, so the model learns what to change.

>>> code = "import pandas as pd\\ndf = pd.read_csv('x.csv')\\ndef build_model():\\n    pass\\n"
>>> sanitise(code).dropped
["line 2: df = pd.read_csv('x.csv')"]
"""

from __future__ import annotations

import ast
import builtins
import symtable
from collections.abc import Collection
from dataclasses import dataclass, field

__all__ = ["Sanitised", "fingerprint", "sanitise", "static_problems"]

# Calls that read or write the outside world: an assignment holding one is "example usage".
_IO_CALLS = {"open", "read_csv", "read_parquet", "read_excel", "read_json", "read_table", "load"}
_BUILTINS = set(dir(builtins)) | {"__name__", "__file__", "__doc__"}


@dataclass
class Sanitised:
    code: str  # the module that runs
    dropped: list[str] = field(default_factory=list)  # "line N: statement", for the record
    syntax_error: str | None = None  # the reply is not valid Python (nothing was dropped)


def sanitise(code: str) -> Sanitised:
    """`code` without top-level statements a model module has no use for."""
    try:
        tree = ast.parse(code)
    except SyntaxError as error:
        salvaged = _complete_prefix(code)
        if salvaged is None:
            return Sanitised(code, syntax_error=f"SyntaxError: {error.msg} (line {error.lineno})")
        result = sanitise(salvaged)
        first = salvaged.count("\n") + 1
        tail = f"lines {first}-{code.count(chr(10)) + 1}: an unfinished statement ({error.msg})"
        return Sanitised(result.code, [*result.dropped, tail])
    defined: set[str] = set()
    own = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    kept: list[ast.stmt] = []
    dropped: list[str] = []
    for index, node in enumerate(tree.body):
        if _keeps(node, defined, own, first=index == 0):
            kept.append(node)
            defined |= _names_bound(node)
        else:
            text = " ".join((ast.get_source_segment(code, node) or "").split())
            dropped.append(f"line {node.lineno}: {text[:120]}")
    if not dropped:
        return Sanitised(code)
    lines = code.splitlines()
    pieces = ["\n".join(lines[n.lineno - 1 : n.end_lineno]) for n in kept]
    return Sanitised("\n\n".join(pieces).rstrip() + "\n", dropped)


def static_problems(
    code: str, columns: Collection[str], foreign_columns: Collection[str] = ()
) -> list[str]:
    """Why `code` cannot work on a table with `columns`, before running it: an empty list when
    nothing is found. `foreign_columns` are the worked example's columns, which a copied
    example names."""
    try:
        tree = ast.parse(code)
    except SyntaxError as error:
        return [f"SyntaxError: {error.msg} (line {error.lineno})"]
    problems = []
    top = {name for node in tree.body for name in _names_bound(node)}
    if "build_model" not in top:
        problems.append("the program does not define a function build_model()")
    free = sorted(_undefined_globals(code) - top - _BUILTINS)
    if free:
        problems.append(
            f"the module uses {', '.join(f'`{n}`' for n in free)} without defining it: there "
            "is no global data; build_model() gets none, and the model sees the rows only in "
            "fit(X, y) and predict_proba(X)"
        )
    known = set(columns)
    copied = sorted({s for s in _strings(tree) if s in set(foreign_columns) and s not in known})
    if copied:
        problems.append(
            f"the module names the worked example's columns {copied}, not this table's: "
            f"use the columns {sorted(known)}"
        )
    unknown = sorted(_unknown_columns(tree, known) - set(copied))
    if unknown:
        problems.append(
            f"the module names columns the table does not have: {unknown} (its columns are "
            f"{sorted(known)})"
        )
    return problems


def _complete_prefix(code: str) -> str | None:
    """The longest run of complete top-level statements at the start of `code` that defines
    build_model: a reply cut off by the token limit (small models often repeat a function until
    they run out) keeps what it finished. None when no such prefix parses."""
    lines = code.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line[:1].strip() and not line.startswith("#")]
    for cut in reversed(starts):
        prefix = "".join(lines[:cut])
        try:
            tree = ast.parse(prefix)
        except SyntaxError:
            continue
        if any(isinstance(n, ast.FunctionDef) and n.name == "build_model" for n in tree.body):
            return prefix
    return None


def fingerprint(code: str) -> str:
    """The program as Python sees it (comments and layout ignored), to spot a repeated repair."""
    try:
        return ast.dump(ast.parse(code))
    except SyntaxError:
        return " ".join(code.split())


# -- helpers ------------------------------------------------------------------------------------
def _keeps(node: ast.stmt, defined: set[str], own: set[str], first: bool) -> bool:
    """Whether a top-level statement belongs in a model module: `defined` holds the names bound
    so far, `own` the module's own functions and classes (calling one at import is usage)."""
    if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.ClassDef):
        return True
    if first and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return True  # the module's docstring
    if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
        used = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
        return used <= defined | _BUILTINS and not _calls_io(node.value, own)
    return False


def _calls_io(node: ast.AST, own: set[str]) -> bool:
    """Whether `node` reads data or runs the module's own code (`model = build_model()`)."""
    for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
        name = call.func.attr if isinstance(call.func, ast.Attribute) else None
        name = name or (call.func.id if isinstance(call.func, ast.Name) else None)
        if name in _IO_CALLS or name in own or (name or "").startswith("read_"):
            return True
    return False


def _names_bound(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    return {n.id for t in targets if t is not None for n in ast.walk(t) if isinstance(n, ast.Name)}


def _undefined_globals(code: str) -> set[str]:
    """Names the module's functions and classes read as globals (symtable's scoping rules)."""
    found: set[str] = set()

    def visit(table: symtable.SymbolTable) -> None:
        for child in table.get_children():
            for symbol in child.get_symbols():
                if symbol.is_referenced() and symbol.is_global() and not symbol.is_assigned():
                    found.add(symbol.get_name())
            visit(child)

    visit(symtable.symtable(code, "program.py", "exec"))
    return found


def _strings(tree: ast.AST) -> set[str]:
    return {
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


def _unknown_columns(tree: ast.AST, columns: set[str]) -> set[str]:
    """Strings used as column names that are not columns: `X["name"]`, and the other members
    of a list or tuple of strings that names at least one real column."""
    unknown: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            texts = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            texts = [t for t in texts if isinstance(t, str)]
            if len(texts) == len(node.elts) and any(t in columns for t in texts):
                unknown |= {t for t in texts if t not in columns}
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            key = node.slice
            if (
                node.value.id == "X"
                and isinstance(key, ast.Constant)
                and isinstance(key.value, str)
            ):
                unknown |= {key.value} - columns
    return unknown
