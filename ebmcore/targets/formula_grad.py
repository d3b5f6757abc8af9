"""Closed-form gradients of typed formulas, derived from their checked syntax tree.

:func:`compile_gradient` flattens the tree into a tape of operations and runs reverse
accumulation over it: a forward sweep computes the node values (constant subtrees are
computed once per dtype and device), a backward sweep applies to each node the
derivative rule that ``torch.autograd`` applies to the same operation (written with
faster kernels that give the same numbers to rounding: masks without ``torch.where``,
``x*x`` for ``x**2``).  So the gradient agrees with autograd's everywhere, including where
it is a convention (``abs``, ``relu``, ``min``/``max`` ties, ``clamp`` at its bounds,
``r``/``theta`` at the origin) and where it is ``nan`` or ``inf`` (``sqrt`` at 0,
``log`` of a negative number), so divergence checks see what they see under autograd.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ebmcore.targets.grammar import BINOPS, FUNCTIONS

__all__ = ["RULES", "GradientProgram", "compile_gradient", "polar"]

Adjoints = tuple[Tensor | None, ...]
Rule = Callable[[Tensor, Tensor, tuple[Tensor, ...], tuple[bool, ...]], Adjoints]


def polar(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``r``, ``theta`` and ``r^2``; ``r`` and ``theta`` are 0 at the origin.

    At every finite point these are the value path's numbers (``_polar_autograd_safe`` in
    :mod:`ebmcore.targets.formula`, written with ``where`` so that autograd gives 0 at the
    origin), computed without ``where``, which is much slower on the CPU.
    """
    r2 = x * x + y * y  # +0, positive or +inf at a finite point
    return r2.sqrt(), _thr(torch.atan2(y, x), r2, 0.0), r2


def _polar_back(x: Tensor, y: Tensor, r: Tensor, r2: Tensor, gr: Tensor | None,
                gt: Tensor | None) -> tuple[list[Tensor], list[Tensor]]:
    """Contributions of the adjoints of ``r`` and ``theta`` to those of ``x`` and ``y``.

    Autograd's rules through the value path's ``where``/``sqrt``/``atan2``/``*``: every
    contribution is masked to 0 at the origin (``r2 <= 0``), even an ``inf`` or ``nan``
    adjoint; elsewhere ``d r = (x, y) / r`` and ``d theta = (-y, x) / r^2``.
    """
    to_x: list[Tensor] = []
    to_y: list[Tensor] = []
    if gr is not None:
        g = _thr(gr / (2 * r), r2, 0.0)
        gx, gy = g * x, g * y
        to_x.append(gx + gx)
        to_y.append(gy + gy)
    if gt is not None:
        recip = r2.reciprocal()
        to_y.append(_thr(gt * x * recip, r2, 0.0))
        to_x.append(_thr(gt * -y * recip, r2, 0.0))
    return to_x, to_y


# where(mask, g, 0) written as threshold_backward(g, flag, 0) on a 0/1 float flag made by a
# comparison into a float tensor: the same numbers (an inf or nan g is still masked to 0),
# without torch.where's and bool tensors' slow CPU kernels (tens of times slower at 1e5).
_thr = torch.ops.aten.threshold_backward.default


def _flag(cmp: Callable[..., Tensor], a: Tensor, b: Tensor | float) -> Tensor:
    """1.0 where ``cmp(a, b)``, else 0.0, as a float tensor of their broadcast shape."""
    shape = torch.broadcast_shapes(a.shape, b.shape) if isinstance(b, Tensor) else a.shape
    return cmp(a, b, out=a.new_empty(shape))


def _keep(g: Tensor, flag: Tensor) -> Tensor:
    """``g`` where ``flag`` is positive, else 0."""
    return _thr(g, flag, 0.0)


def _drop(g: Tensor, flag: Tensor) -> Tensor:
    """0 where ``flag`` is 1, else ``g``."""
    return _thr(g, flag.neg_(), -0.5)


# Each rule maps (adjoint of the result, result, arguments, which arguments need one) to the
# arguments' adjoints, None where not needed.  The formulas are torch.autograd's for the
# operation the value path runs (derivatives.yaml and its manual backward functions).
def _add(g, out, a, need):
    return g if need[0] else None, g if need[1] else None


def _sub(g, out, a, need):
    return g if need[0] else None, -g if need[1] else None


def _mul(g, out, a, need):
    return g * a[1] if need[0] else None, g * a[0] if need[1] else None


def _div(g, out, a, need):
    return g / a[1] if need[0] else None, -g * ((a[0] / a[1]) / a[1]) if need[1] else None


def _pow(g, out, a, need):
    base, ex = a
    d_base = d_ex = None
    if need[0]:  # where(ex == 0, 0, g * (ex * base^(ex - 1)))
        d_base = _drop(g * (ex * base.pow(ex - 1)), _flag(torch.eq, ex, 0.0))
    if need[1]:  # g * where((base == 0) & (ex >= 0), 0, out * log(base))
        at_zero = _flag(torch.eq, base, 0.0) * _flag(torch.ge, ex, 0.0)
        d_ex = g * _drop(out * base.log(), at_zero)
    return d_base, d_ex


@dataclass(frozen=True)
class PowerOf:
    """A constant exponent, with what its rule needs computed once per dtype and device."""

    ex: Tensor  # the exponent, 0-dim
    fwd: Tensor | float  # the exponent to compute with: ex, or a float torch has a kernel for
    back: Tensor | float  # likewise for ex - 1, the exponent of the derivative
    zero: bool  # ex == 0: the derivative is 0
    square: bool  # ex - 1 == 1: base^(ex - 1) is base itself

    @classmethod
    def of(cls, ex: Tensor) -> PowerOf:
        m1 = ex - 1  # as autograd computes it
        v, w = float(ex), float(m1)
        return cls(ex, v if v in _FAST_EXPONENTS else ex, w if w in _FAST_EXPONENTS else m1,
                   v == 0.0, w == 1.0)


# torch.pow by these float exponents runs x*x, x*x*x, 1/x, 1/(x*x): equal to pow by a tensor
# exponent to rounding, with the same infinities and signed zeros, and ~30x faster on the CPU.
_FAST_EXPONENTS = (2.0, 3.0, -1.0, -2.0)


def _pow_const(base: Tensor, p: PowerOf) -> Tensor:
    return torch.pow(base, p.fwd)


def _pow_const_rule(g, out, a, need):
    base, p = a
    if p.zero:
        return torch.zeros_like(base), None
    return g * (p.ex * (base if p.square else base.pow(p.back))), None


def _lse(*args: Tensor) -> Tensor:
    """``logsumexp`` of the grammar to rounding (with its infinities): faster for 1 or 2."""
    if len(args) == 1:
        return args[0]
    if len(args) == 2:
        return torch.logaddexp(*args)
    return FUNCTIONS["logsumexp"][2](*args)


def _minmax(loses: Callable[..., Tensor]) -> Rule:
    """``torch.minimum``/``maximum``: the adjoint goes to the winner, half to each at a tie."""

    def rule(g, out, a, need):
        u, v = a
        split = g * torch.rsub(_flag(torch.eq, u, v), 1.0, alpha=0.5)  # g / 2 at a tie
        return (_drop(split, _flag(loses, u, v)) if need[0] else None,
                _drop(split, _flag(loses, v, u)) if need[1] else None)

    return rule


def _clamp(g, out, a, need):
    v, lo, hi = torch.broadcast_tensors(*a)
    inside = _flag(torch.ge, v, lo).mul_(_flag(torch.le, v, hi))
    at_lo = _flag(torch.lt, v, lo).mul_(_flag(torch.lt, lo, hi))  # min > max: min has none
    at_hi = _flag(torch.gt, v, hi).add_(_flag(torch.lt, hi, lo))
    return (_keep(g, inside) if need[0] else None, _keep(g, at_lo) if need[1] else None,
            _keep(g, at_hi) if need[2] else None)


def _logsumexp(g, out, a, need):
    return tuple(g * (ai - out).exp() if n else None for ai, n in zip(a, need, strict=True))


def _atan2(g, out, a, need):
    u, v = a
    den = u * u + v * v
    recip = _thr(den.reciprocal(), den, 0.0)  # autograd's is 0 where den is 0 (den >= 0)
    return g * v * recip if need[0] else None, g * -u * recip if need[1] else None


def _unary(f: Callable[[Tensor, Tensor, Tensor], Tensor]) -> Rule:
    def rule(g, out, a, need):
        return (f(g, out, a[0]),)

    return rule


_tanh_back = torch.ops.aten.tanh_backward.default
_sigmoid_back = torch.ops.aten.sigmoid_backward.default

RULES: dict[str, Rule] = {
    "add": _add, "sub": _sub, "mul": _mul, "div": _div, "pow": _pow,
    "neg": _unary(lambda g, out, a: -g),
    "exp": _unary(lambda g, out, a: g * out),
    "log": _unary(lambda g, out, a: g / a),
    "log1p": _unary(lambda g, out, a: g / (a + 1)),
    "sqrt": _unary(lambda g, out, a: g / (2 * out)),
    "abs": _unary(lambda g, out, a: g * a.sgn()),
    "sin": _unary(lambda g, out, a: g * a.cos()),
    "cos": _unary(lambda g, out, a: g * -a.sin()),
    "tan": _unary(lambda g, out, a: g * (1 + out.pow(2))),
    "sinh": _unary(lambda g, out, a: g * a.cosh()),
    "cosh": _unary(lambda g, out, a: g * a.sinh()),
    "tanh": _unary(lambda g, out, a: _tanh_back(g.expand_as(out), out)),
    "sigmoid": _unary(lambda g, out, a: _sigmoid_back(g.expand_as(out), out)),
    "relu": _unary(lambda g, out, a: _thr(g.expand_as(out), out, 0)),
    "square": _unary(lambda g, out, a: g * (2 * a)),  # torch.square is pow(a, 2)
    "softplus": _unary(lambda g, out, a: g / (1 + (-a).exp())),  # logaddexp(a, 0)
    "atan2": _atan2, "clamp": _clamp, "logsumexp": _logsumexp,
    "min": _minmax(torch.gt), "max": _minmax(torch.lt), "pow_const": _pow_const_rule,
}
"""Operation name -> derivative rule; every operator and function of the grammar has one."""

# Rules that read the value of the node itself, and those that read their arguments' values.
_USES_OUT = frozenset({"pow", "exp", "sqrt", "tan", "tanh", "sigmoid", "relu", "logsumexp"})
_USES_ARGS = frozenset(RULES) - {"add", "sub", "neg", "exp", "sqrt", "tan", "tanh", "sigmoid",
                                 "relu"}
_OPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow"}
_IMPL = {"min": torch.minimum, "max": torch.maximum, "neg": torch.neg,
         **{_OPS[k]: f for k, f in BINOPS.items()}}
_LEAVES = ("x", "y", "r", "theta")


@dataclass(frozen=True)
class _Op:
    out: int  # slot of the result
    name: str  # key of RULES
    fwd: Callable[..., Tensor]  # the value path's implementation
    args: tuple[int, ...]  # slots of the arguments
    need: tuple[bool, ...]  # which arguments depend on x and y


class _Tape:
    """Flattens a checked tree into ops over numbered slots (0-3: x, y, r, theta)."""

    def __init__(self, build_const: Callable[[ast.expr], Callable[[dict], Tensor]]) -> None:
        self.build_const = build_const
        self.ops: list[_Op] = []
        self.constants: list[tuple[int, Callable[[dict], Tensor]]] = []
        self.n_slots = len(_LEAVES)
        self.parent: dict[int, tuple[str, int]] = {}  # slot -> (parent op name, arg position)

    def slot(self) -> int:
        self.n_slots += 1
        return self.n_slots - 1

    def emit(self, name: str, fwd: Callable[..., Tensor], args: list[tuple[int, bool]]) -> int:
        out = self.slot()
        for i, (s, live) in enumerate(args):
            if live:
                self.parent[s] = (name, i)
        self.ops.append(_Op(out, name, fwd, tuple(s for s, _ in args),
                            tuple(live for _, live in args)))
        return out

    def add(self, node: ast.expr) -> tuple[int, bool]:
        """Slot of ``node``'s value and whether it depends on the position."""
        if not any(isinstance(n, ast.Name) and n.id in _LEAVES for n in ast.walk(node)):
            s = self.slot()
            self.constants.append((s, self.build_const(node)))
            return s, False
        if isinstance(node, ast.Name):
            return _LEAVES.index(node.id), True
        if isinstance(node, ast.UnaryOp):
            inner = self.add(node.operand)
            if isinstance(node.op, ast.UAdd):
                return inner
            return self.emit("neg", torch.neg, [inner]), True
        if isinstance(node, ast.BinOp):
            name = _OPS[type(node.op)]
            left, right = self.add(node.left), self.add(node.right)
            if name == "pow" and not right[1]:  # a constant exponent: its rule, prepared
                s, build = right[0], self.constants[-1][1]
                assert self.constants[-1][0] == s
                self.constants[-1] = (s, lambda env, build=build: PowerOf.of(build(env)))
                return self.emit("pow_const", _pow_const, [left, right]), True
            return self.emit(name, _IMPL[name], [left, right]), True
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        name, args = node.func.id, [self.add(a) for a in node.args]
        if name in ("min", "max"):  # the value path folds them pairwise, left to right
            acc = args[0]
            for a in args[1:]:
                acc = (self.emit(name, _IMPL[name], [acc, a]), True)
            return acc
        return self.emit(name, _lse if name == "logsumexp" else FUNCTIONS[name][2], args), True


def _total(terms: list[Tensor | None], like: Tensor) -> Tensor:
    """The sum of the adjoint terms of one coordinate, as an ``(N,)`` tensor."""
    acc = None
    for t in terms:
        if t is not None:
            acc = t if acc is None else acc + t
    return torch.zeros_like(like) if acc is None else acc.expand(like.shape).contiguous()


class GradientProgram:
    """Energy and gradient of one formula by reverse accumulation; see the module docstring.

    Call :meth:`grad` for ``grad E (N, 2)``, :meth:`energy_and_grad` for both from one
    forward sweep.  Built by :func:`compile_gradient`.
    """

    def __init__(self, tape: _Tape, root: tuple[int, bool], polar_used: bool) -> None:
        self._ops, self._constants, self._n = tuple(tape.ops), tuple(tape.constants), tape.n_slots
        self._root, self._live = root
        self._polar = polar_used
        self._cache: dict[tuple, list[tuple[int, Tensor]]] = {}
        # Values the backward sweep reads: a node's own (its rule uses it), or its parent's
        # rule reads it.  Grad-only runs compute a node only if it or an ancestor is read.
        read = {op.out for op in self._ops if op.name in _USES_OUT}
        read |= {s for s, (p, _) in tape.parent.items() if p in _USES_ARGS}
        keep: set[int] = set()
        for op in reversed(self._ops):  # parents come after their arguments on the tape
            if op.out in read or op.out in keep:
                keep.update(op.args)
                keep.add(op.out)
        self._grad_ops = tuple(op for op in self._ops if op.out in keep)

    def _constants_for(self, x: Tensor) -> list[tuple[int, Tensor]]:
        key = (x.dtype, x.device)
        got = self._cache.get(key)
        if got is None:
            with torch.no_grad():
                got = [(s, build({"x": x})) for s, build in self._constants]
            self._cache = {key: got}  # one dtype and device at a time
        return got

    def _run(self, X: Tensor, with_energy: bool) -> tuple[Tensor | None, Tensor]:
        # Columns of the (N, 2) layout are strided: on the CPU every kernel reading them runs
        # several times slower (atan2 about 10x) than on one contiguous copy.
        x, y = X[:, 0].contiguous(), X[:, 1].contiguous()
        vals: list = [None] * self._n
        vals[0], vals[1] = x, y
        r2 = None
        if self._polar:
            vals[2], vals[3], r2 = polar(x, y)
        for s, v in self._constants_for(x):
            vals[s] = v
        if not self._live:  # no x or y: autograd's gradient of `out + 0 * x` is 0
            energy = vals[self._root] + 0.0 * x if with_energy else None
            return energy, torch.zeros_like(X)
        for op in self._ops if with_energy else self._grad_ops:
            vals[op.out] = op.fwd(*[vals[i] for i in op.args])
        adj: list = [None] * self._n
        adj[self._root] = x.new_ones(())
        for op in reversed(self._ops):
            g = adj[op.out]
            got = RULES[op.name](g, vals[op.out], tuple(vals[i] for i in op.args), op.need)
            for i, gi in zip(op.args, got, strict=True):
                if gi is not None:
                    adj[i] = gi if adj[i] is None else adj[i] + gi
        to_x, to_y = [adj[0]], [adj[1]]
        if self._polar and (adj[2] is not None or adj[3] is not None):
            px, py = _polar_back(x, y, vals[2], r2, adj[2], adj[3])
            to_x += px
            to_y += py
        gx, gy = (_total(terms, x) for terms in (to_x, to_y))
        # Interleaved into (N, 2) by one complex kernel: torch.stack(..., 1) is ~15x slower.
        grad = torch.view_as_real(torch.complex(gx, gy)) if x.device.type == "cpu" else (
            torch.stack((gx, gy), 1))
        return (vals[self._root] if with_energy else None), grad

    def grad(self, X: Tensor) -> Tensor:
        """``grad E`` at ``X (N, 2)``, ``(N, 2)`` in ``X``'s dtype."""
        return self._run(X, False)[1]

    def energy_and_grad(self, X: Tensor) -> tuple[Tensor, Tensor]:
        """``E (N,)`` (equal to the compiled energy's) and ``grad E (N, 2)`` in one sweep."""
        e, g = self._run(X, True)
        return e, g  # type: ignore[return-value]


def compile_gradient(tree: ast.Expression,
                     build_const: Callable[[ast.expr], Callable[[dict], Tensor]]
                     ) -> GradientProgram:
    """The gradient program of a checked formula tree.

    Args:
        tree: from :func:`ebmcore.targets.grammar.parse`.
        build_const: compiles a subtree free of ``x y r theta`` the way the value path does,
            to a function of an environment holding ``"x"`` (for its dtype and device).
    """
    tape = _Tape(build_const)
    root = tape.add(tree.body)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return GradientProgram(tape, root, bool(used & {"r", "theta"}))
