"""The formula grammar: whitelist tables, cheap pre-checks and the checked parser.

:func:`parse` turns the text into a Python :mod:`ast` tree after refusing,
with a :class:`FormulaError` that names the column, everything outside the
grammar or the limits.  Nothing is evaluated here; :mod:`ebmcore.targets.formula`
turns the checked tree into torch closures.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable

import torch
from torch import Tensor

from ebmcore.energies import ValidationError

__all__ = [
    "BINOPS",
    "CONSTANTS",
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_LITERAL",
    "MAX_NODES",
    "VARIABLES",
    "FormulaError",
    "parse",
]

MAX_LENGTH = 2000  # characters in a formula
MAX_DEPTH = 50  # nesting of brackets, and of the syntax tree
MAX_NODES = 500  # expression nodes in the syntax tree
MAX_LITERAL = 1e300  # largest number literal


class FormulaError(ValidationError):
    """A formula that cannot be compiled; ``column`` is 1-based, or None."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message, column)
        self.message = message  # what is wrong, e.g. "unknown name 'z'"
        self.column = column  # 1-based position in the formula text, or None

    def __str__(self) -> str:
        return self.message if self.column is None else f"{self.message} at column {self.column}"


def _fold(op: Callable[[Tensor, Tensor], Tensor]) -> Callable[..., Tensor]:
    def reduce(*args: Tensor) -> Tensor:
        out = args[0]
        for a in args[1:]:
            out = op(out, a)
        return out

    return reduce


def _logsumexp(*args: Tensor) -> Tensor:
    return torch.logsumexp(torch.stack(torch.broadcast_tensors(*args)), dim=0)


def _softplus(v: Tensor) -> Tensor:  # exact (no threshold), stable, grad 1/2 at 0
    return torch.logaddexp(v, torch.zeros_like(v))


def _clamp(v: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    return torch.clamp(*torch.broadcast_tensors(v, lo, hi))


_UNARY = "exp log log1p sqrt abs sin cos tan sinh cosh tanh sigmoid relu square".split()
FUNCTIONS: dict[str, tuple[int, int | None, Callable[..., Tensor]]] = {
    # name: (fewest args, most args or None for variadic, implementation)
    **{name: (1, 1, getattr(torch, name)) for name in _UNARY},
    "softplus": (1, 1, _softplus),
    "atan2": (2, 2, torch.atan2),
    "clamp": (3, 3, _clamp),
    "min": (1, None, _fold(torch.minimum)),
    "max": (1, None, _fold(torch.maximum)),
    "logsumexp": (1, None, _logsumexp),
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}
VARIABLES = ("x", "y", "r", "theta")  # r = sqrt(x^2 + y^2), theta = atan2(y, x)

# fmt: off
BINOPS: dict[type, Callable[[Tensor, Tensor], Tensor]] = {
    ast.Add: torch.add, ast.Sub: torch.sub, ast.Mult: torch.mul, ast.Div: torch.div,
    ast.Pow: torch.pow,
}
_OP_NAMES = {
    ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.BitXor: "^", ast.BitOr: "|",
    ast.BitAnd: "&", ast.LShift: "<<", ast.RShift: ">>", ast.Invert: "~", ast.Not: "not",
}
# fmt: on
_REFUSED: dict[type, str] = {
    ast.Attribute: "attribute access ('.') is not allowed",
    ast.Subscript: "indexing ('[...]') is not allowed",
    ast.Lambda: "lambda functions are not allowed",
    ast.IfExp: "conditional expressions ('a if c else b') are not allowed",
    ast.Compare: "comparisons are not allowed",
    ast.BoolOp: "boolean operators ('and', 'or') are not allowed",
    ast.NamedExpr: "assignment (':=') is not allowed",
    ast.Starred: "starred arguments are not allowed",
    ast.keyword: "keyword arguments are not allowed",
    ast.JoinedStr: "strings are not allowed",
    ast.Tuple: "tuples ('a, b' or '()') are not allowed",
    ast.List: "lists are not allowed",
    ast.Set: "sets are not allowed",
    ast.Dict: "dictionaries are not allowed",
    ast.Await: "'await' is not allowed",
    **dict.fromkeys(
        (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp),
        "comprehensions are not allowed",
    ),
}


_WORD = re.compile(r"[A-Za-z_]\w*|(\.?\d(?:[eE][+-]\d|[\w.])*)")  # a name, or a number-like run
_NUMBER = re.compile(r"(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?[jJ]?")


def _short(s: str) -> str:
    """``repr`` of a user's word, cut to a readable length."""
    return repr(s if len(s) <= 24 else s[:20] + "...")


def _precheck(text: str) -> int:
    """Cheap checks before parsing; returns the number of leading spaces."""
    if not isinstance(text, str):
        raise FormulaError(f"a formula must be a string, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"formula is too long ({len(text)} characters, limit {MAX_LENGTH})")
    depth = 0
    for i, ch in enumerate(text):
        if not (" " <= ch <= "~" or ch in "\t\n\r"):
            raise FormulaError(f"character {ch!r} (U+{ord(ch):04X}) is not allowed", i + 1)
        if ch in "#\\":
            what = "comments ('#')" if ch == "#" else "backslashes"
            raise FormulaError(f"{what} are not allowed", i + 1)
        depth += (ch in "([{") - (ch in ")]}")
        if depth > MAX_DEPTH:
            raise FormulaError(f"brackets are nested too deeply (limit {MAX_DEPTH})", i + 1)
    if not text.strip():
        raise FormulaError("the formula is empty")
    for m in _WORD.finditer(text):  # before the parser, which warns on e.g. "1if"
        if m.group(1) and not _NUMBER.fullmatch(m.group(1)):
            msg = f"invalid number {_short(m.group(1))}: use decimals, and write 2*x, not 2x"
            raise FormulaError(msg, m.start() + 1)
    return len(text) - len(text.lstrip())


class _Checker:
    """Finds every refused construct; the leftmost one is reported."""

    def __init__(self, text: str, shift: int, names: frozenset[str]) -> None:
        self.text, self.shift, self.names = text, shift, names
        self.errors: list[tuple[int, str]] = []

    def refuse(self, message: str, column: int) -> None:
        self.errors.append((column, message))

    def col(self, node: ast.AST) -> int:
        return node.col_offset + self.shift + 1  # type: ignore[attr-defined]

    def at(self, offset: int | None) -> int:
        """Column of the first character at or after ``offset`` other than ' ' and ')'."""
        i = (offset or 0) + self.shift
        while i < len(self.text) - 1 and self.text[i] in " )":
            i += 1
        return i + 1

    def check(self, tree: ast.Expression) -> None:
        callees = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                if id(node) in callees:
                    pass  # checked with its call
                elif node.id in FUNCTIONS:
                    self.refuse(
                        f"'{node.id}' is a function: call it as {node.id}(...)", self.col(node)
                    )
                elif node.id not in self.names:
                    self.refuse(f"unknown name {_short(node.id)}", self.col(node))
            elif isinstance(node, ast.Constant):
                self.constant(node)
            elif isinstance(node, ast.Call):
                self.call(node)
            elif isinstance(node, (ast.BinOp, ast.UnaryOp)):
                if type(node.op) not in BINOPS and not isinstance(node.op, (ast.USub, ast.UAdd)):
                    sym = _OP_NAMES.get(type(node.op), "?")
                    hint = "; use ** for powers" if sym == "^" else ""
                    where = node.left.end_col_offset if isinstance(node, ast.BinOp) else None
                    column = self.at(where) if where is not None else self.col(node)
                    self.refuse(f"operator '{sym}' is not allowed{hint}", column)
            elif isinstance(node, (ast.Attribute, ast.Subscript)):
                self.refuse(_REFUSED[type(node)], self.at(node.value.end_col_offset))
            elif isinstance(node, ast.Compare):
                self.refuse(_REFUSED[ast.Compare], self.at(node.left.end_col_offset))
            elif isinstance(node, ast.BoolOp):
                self.refuse(_REFUSED[ast.BoolOp], self.at(node.values[0].end_col_offset))
            elif type(node) in _REFUSED:
                self.refuse(_REFUSED[type(node)], self.col(node))
            elif hasattr(node, "col_offset"):
                self.refuse(f"{type(node).__name__} is not allowed", self.col(node))

    def constant(self, node: ast.Constant) -> None:
        v = node.value
        if isinstance(v, (str, bytes)):
            self.refuse("strings are not allowed", self.col(node))
        elif isinstance(v, bool) or v is None or v is Ellipsis:
            self.refuse(f"'{v!r}' is not allowed", self.col(node))
        elif isinstance(v, complex):
            self.refuse("complex numbers are not allowed", self.col(node))
        elif not abs(v) <= MAX_LITERAL:  # int compare: no float overflow; catches nan too
            self.refuse(f"number is too large (limit {MAX_LITERAL:g})", self.col(node))

    def call(self, node: ast.Call) -> None:
        f = node.func
        if not isinstance(f, ast.Name):
            if isinstance(f, (ast.Constant, ast.BinOp, ast.UnaryOp, ast.Call)):
                self.refuse("only named functions can be called", self.at(f.end_col_offset))
            return  # other callees are refused on their own
        if f.id not in FUNCTIONS:
            known = f"'{f.id}' is not a function" if f.id in self.names else None
            self.refuse(known or f"unknown function {_short(f.id)}", self.col(f))
            return
        lo, hi, _ = FUNCTIONS[f.id]
        n = len(node.args)
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            return  # refused on their own
        if n < lo or (hi is not None and n > hi):
            want = f"at least {lo}" if hi is None else f"{lo}" if lo == hi else f"{lo} to {hi}"
            s = "" if want in ("1", "at least 1") else "s"
            self.refuse(f"{f.id}() takes {want} argument{s}, got {n}", self.col(f))


def _check_depth(tree: ast.Expression, shift: int) -> None:
    """Refuse trees deeper than MAX_DEPTH (iteratively: the tree may be very deep)."""
    stack: list[tuple[ast.expr, int]] = [(tree.body, 1)]
    while stack:
        node, d = stack.pop()
        if d > MAX_DEPTH:
            col = node.col_offset + shift + 1
            raise FormulaError(f"formula is nested too deeply (limit {MAX_DEPTH})", col)
        stack.extend((c, d + 1) for c in ast.iter_child_nodes(node) if isinstance(c, ast.expr))


def parse(text: str, names: frozenset[str]) -> ast.Expression:
    """Parse and check a formula.

    Args:
        text: the formula; tabs and newlines count as spaces.
        names: the variable names it may use (``VARIABLES``, constants, parameters).

    Returns:
        The ``ast`` tree (mode ``"eval"``), containing only numbers, allowed names,
        ``+ - * / **``, unary ``-``/``+`` and calls of ``FUNCTIONS`` with the right arity.

    Raises:
        FormulaError: the leftmost problem, with its 1-based column where there is one.
    """
    shift = _precheck(text)
    body = text.replace("\t", " ").replace("\n", " ").replace("\r", " ")[shift:]
    try:
        tree = ast.parse(body, mode="eval")
    except SyntaxError as exc:
        col = exc.offset + shift if exc.offset and exc.offset > 0 else None
        if col is None and body.rstrip()[-1:] in "+-*/(,":
            raise FormulaError("formula ends unexpectedly", len(text.rstrip()) + 1) from None
        raise FormulaError(f"syntax error: {exc.msg}", col) from None
    except (RecursionError, MemoryError, ValueError, OverflowError):
        raise FormulaError("formula is too complex to parse") from None
    n_nodes = sum(isinstance(n, (ast.expr, ast.keyword)) for n in ast.walk(tree))
    if n_nodes > MAX_NODES:
        raise FormulaError(f"formula is too complex ({n_nodes} parts, limit {MAX_NODES})")
    _check_depth(tree, shift)
    checker = _Checker(text, shift, names)
    checker.check(tree)
    if checker.errors:
        column, message = min(checker.errors, key=lambda e: e[0])
        raise FormulaError(message, column)
    return tree
