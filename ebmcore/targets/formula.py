"""User-typed energies: a formula in ``x`` and ``y`` compiled safely into torch.

The text is parsed with :func:`ast.parse` and checked against a whitelist
(:mod:`ebmcore.targets.grammar`), then turned into a tree of closures; nothing
the user types is ever evaluated as Python.  Every number is a torch float, so
``9**9**9`` is ``inf`` (caught by :func:`check_energy_on_grid`), never a huge
Python integer.

Grammar: decimal numbers; ``+ - * / **``; unary ``-``/``+``; parentheses; the
names ``x y r theta pi e`` and user parameters; calls by bare name with
positional arguments to the functions in :data:`FUNCTIONS`.
"""

from __future__ import annotations

import ast
import keyword
import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from ebmcore.energies import Box, Energy, Target, ValidationError, quote
from ebmcore.targets.formula_grad import GradientProgram, compile_gradient
from ebmcore.targets.grammar import (
    BINOPS,
    CONSTANTS,
    FUNCTIONS,
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_NODES,
    VARIABLES,
    FormulaError,
    parse,
)

__all__ = [
    "CONSTANTS",
    "FUNCTIONS",
    "MAX_BOX",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_NODES",
    "VARIABLES",
    "FormulaError",
    "check_energy_on_grid",
    "compile_formula",
    "formula_target",
    "validate_box",
]

MAX_BOX = 1e4  # widest box side, and largest |coordinate| is 100x that

Env = dict[str, Tensor]  # name -> (N,) tensor, or 0-dim for constants
Node = Callable[[Env], Tensor]  # compiled sub-expression


def _build(node: ast.expr, consts: Mapping[str, float]) -> Node:
    """Closure tree for a checked node; recursion depth is bounded by MAX_DEPTH."""
    if isinstance(node, ast.Constant):
        v = float(node.value)
        return lambda env: env["x"].new_full((), v)
    if isinstance(node, ast.Name):
        name = node.id
        if name in consts:
            c = consts[name]
            return lambda env: env["x"].new_full((), c)
        return lambda env: env[name]
    if isinstance(node, ast.UnaryOp):
        inner = _build(node.operand, consts)
        return (lambda env: -inner(env)) if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp):
        op = BINOPS[type(node.op)]
        a, b = _build(node.left, consts), _build(node.right, consts)
        return lambda env: op(a(env), b(env))
    if isinstance(node, ast.Call):
        impl = FUNCTIONS[node.func.id][2]  # type: ignore[attr-defined]
        args = [_build(a, consts) for a in node.args]
        return lambda env: impl(*(a(env) for a in args))
    raise AssertionError(f"unchecked node {type(node).__name__}")  # pragma: no cover


def _polar_autograd_safe(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """``r`` and ``theta`` with value 0 and gradient 0 (not nan) under autograd at the origin."""
    r2 = x * x + y * y
    inside = r2 > 0
    r = torch.where(inside, torch.sqrt(torch.where(inside, r2, 1.0)), 0.0)
    theta = torch.where(inside, torch.atan2(y, torch.where(inside, x, 1.0)), 0.0)
    return r, theta


def compile_formula(expr: str, params: Mapping[str, float] | None = None) -> Energy:
    """Compile a formula into an energy ``(N, 2) -> (N,)``.

    Args:
        expr: the formula, e.g. ``"(x**2 + y**2 - 4)**2 / s + 0.1*x"``.
        params: extra named constants, e.g. ``{"s": 0.5}``.

    Returns:
        A function of ``X`` ``(N, 2)`` (``x = X[:, 0]``, ``y = X[:, 1]``) giving
        ``(N,)`` energies in the dtype and on the device of ``X``.

    Raises:
        FormulaError: anything outside the grammar or the limits, with its column.
    """
    return _compile(expr, params)[0]


def _points(X: Tensor) -> Tensor:
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValidationError(f"energy expects points of shape (N, 2), got {tuple(X.shape)}")
    return X if X.is_floating_point() else X.to(torch.get_default_dtype())


def _compile(expr: str, params: Mapping[str, float] | None) -> tuple[Energy, GradientProgram]:
    """The energy of :func:`compile_formula` and the gradient program of the same tree."""
    consts = dict(CONSTANTS)
    for name, value in (params or {}).items():
        ok = isinstance(name, str) and name.isascii() and name.isidentifier()
        if not ok or keyword.iskeyword(name):
            raise FormulaError(f"parameter name {quote(name)} is not a valid name")
        if name in consts or name in VARIABLES or name in FUNCTIONS:
            raise FormulaError(f"parameter name {quote(name)} clashes with a built-in name")
        try:
            consts[name] = float(value)
        except (TypeError, ValueError, OverflowError):
            raise FormulaError(f"parameter {quote(name)}: {quote(value)} is not a number") from None
        if not math.isfinite(consts[name]):
            raise FormulaError(f"parameter {quote(name)}: {quote(value)} is not finite")
    tree = parse(expr, frozenset(consts) | frozenset(VARIABLES))
    body = _build(tree.body, consts)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    polar_used, constant = bool(used & {"r", "theta"}), not used & set(VARIABLES)

    def energy(X: Tensor) -> Tensor:
        X = _points(X)
        x, y = X[:, 0], X[:, 1]
        env = {"x": x, "y": y}
        if polar_used:
            env["r"], env["theta"] = _polar_autograd_safe(x, y)
        out = body(env)
        if constant:  # keep the result in the autograd graph of X
            out = out + 0.0 * x
        return out.expand(x.shape)

    return energy, compile_gradient(tree, lambda node: _build(node, consts))


def validate_box(box: Sequence[float]) -> Box:
    """Check a view box ``(xmin, xmax, ymin, ymax)`` and return it as floats.

    Each side must be finite, increasing, at most ``MAX_BOX`` wide, within
    ``100 * MAX_BOX`` of the origin, and not narrower than 1e-6 of its position.
    """
    try:
        x0, x1, y0, y1 = (float(v) for v in box)
    except (TypeError, ValueError, OverflowError):
        raise ValidationError(
            f"box must be 4 numbers (xmin, xmax, ymin, ymax), got {quote(box)}"
        ) from None
    for lo, hi, axis in ((x0, x1, "x"), (y0, y1, "y")):
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValidationError(f"box {axis} range ({lo:g}, {hi:g}) is not finite")
        if not lo < hi:
            raise ValidationError(f"box needs {axis}min < {axis}max, got ({lo:g}, {hi:g})")
        if hi - lo > MAX_BOX or max(abs(lo), abs(hi)) > 100 * MAX_BOX:
            raise ValidationError(f"box {axis} range ({lo:g}, {hi:g}) is too large")
        if hi - lo < 1e-6 * max(1.0, abs(lo), abs(hi)):
            raise ValidationError(f"box {axis} range ({lo:g}, {hi:g}) is too narrow")
    return (x0, x1, y0, y1)


def check_energy_on_grid(energy: Energy, box: Sequence[float], n: int = 128) -> None:
    """Raise ValidationError unless ``energy`` is finite and ``exp(-E)`` is usable on the box.

    Evaluates at the ``n x n`` cell centres of ``box`` in float64 (as quadrature
    does).  ``exp(-E)`` must neither overflow anywhere (min E < -708.8) nor
    underflow everywhere (min E > 708.8), or the density cannot be normalised in
    floating point; subtracting a constant from the formula fixes both.  Also
    raises if the energy fails or does not return shape ``(n*n,)``.
    """
    x0, x1, y0, y1 = validate_box(box)
    if not isinstance(n, int) or n < 2:
        raise ValidationError(f"grid size must be an integer >= 2, got {n!r}")
    xs = x0 + (torch.arange(n, dtype=torch.float64) + 0.5) * ((x1 - x0) / n)
    ys = y0 + (torch.arange(n, dtype=torch.float64) + 0.5) * ((y1 - y0) / n)
    pts = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
    try:
        with torch.no_grad():
            e = energy(pts)
    except ValidationError:
        raise
    except (RuntimeError, TypeError, ValueError, ArithmeticError) as exc:
        raise ValidationError(f"energy failed on the grid: {exc}") from None
    if not isinstance(e, Tensor) or e.shape != (n * n,):
        shape = tuple(e.shape) if isinstance(e, Tensor) else type(e).__name__
        raise ValidationError(f"energy must return shape (N,) = ({n * n},), got {shape}")
    bad = ~torch.isfinite(e)
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        px, py = pts[i].tolist()
        value = float(e[i])
        raise ValidationError(f"energy is not finite at (x, y) = ({px:.4g}, {py:.4g}): {value}")
    e_min, limit = float(e.min()), math.log(torch.finfo(torch.float64).max)  # 709.78
    if e_min < -limit + 1:
        raise ValidationError(f"energy reaches {e_min:.4g}: exp(-E) overflows; subtract a constant")
    if e_min > limit - 1:
        raise ValidationError(
            f"energy is at least {e_min:.4g}: exp(-E) underflows; subtract a constant"
        )


def formula_target(
    expr: str,
    box: Sequence[float] = (-4, 4, -4, 4),
    params: Mapping[str, float] | None = None,
    *,
    check: bool = True,
) -> Target:
    """Build a :class:`Target` named ``"formula"`` from a formula.

    Its ``grad`` is the closed form derived from the formula's tree
    (:mod:`ebmcore.targets.formula_grad`), equal to autograd's to rounding.

    Args:
        expr: the formula; see :func:`compile_formula`.
        box: view box and quadrature domain ``(xmin, xmax, ymin, ymax)``.
        params: named constants used by the formula.
        check: also run :func:`check_energy_on_grid` on the box.
    """
    if params and "expr" in params:
        raise FormulaError("parameter name 'expr' is reserved")
    energy, program = _compile(expr, params)
    good_box = validate_box(box)
    if check:
        check_energy_on_grid(energy, good_box)
    values = {k: float(v) for k, v in (params or {}).items()}

    def grad(X: Tensor) -> Tensor:
        return program.grad(_points(X))

    return Target("formula", energy, good_box, {"expr": expr, **values}, grad=grad)
