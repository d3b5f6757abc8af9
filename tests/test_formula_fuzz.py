"""Property-based fuzzing of ebmcore.targets.formula with hypothesis.

FUZZ LOG.  Default run: 300 derandomized examples per property, 900 inputs, about 10 s;
(b) compares about 17,000 points.  Large run, once, with FORMULA_FUZZ_EXAMPLES=20000:
60,000 inputs in 6.5 min: (a) 20,000 texts (150 compiled), (b) 20,000 generated formulas,
1,178,191 points compared with the reference, (c) 20,000 mutants (2,010 compiled).  No failures.
FOUND AND FIXED: the first large run passed but the Python parser printed 133
"SyntaxWarning: invalid decimal literal" for a number running into a keyword ("1if", "2or",
"0x1for"); with warnings as errors they would have become SyntaxError.  formula_parse now
refuses a number followed by letters before parsing, and these properties fail on any warning.
Checking the checker: of 8 bugs planted in the compiler (reversed '-', tanh as sigmoid, pow or
'/' off by 1e-13 or 1e-12 relative, clamp or atan2 arguments swapped, logsumexp dropping an
argument, torch's thresholded softplus), (b) catches all but softplus at 300 examples (and
that at 3,000, softplus(21.0)); test_formula.py checks softplus above the threshold directly.

Properties: (a) any text only ever raises FormulaError, fast; (b) generated valid formula trees
compile and match an independent numpy evaluator within a derived rounding bound; (c) valid
formulas with random characters inserted, deleted or replaced only raise FormulaError.
Set FORMULA_FUZZ_EXAMPLES to run more examples per property (default 300).
"""

from __future__ import annotations

import math
import os
import warnings
from datetime import timedelta

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebmcore.energies import ValidationError, energy_and_grad
from ebmcore.targets.formula import FUNCTIONS, FormulaError, check_energy_on_grid, compile_formula

N_EXAMPLES = int(os.environ.get("FORMULA_FUZZ_EXAMPLES", "300"))
settings.register_profile(
    "formula-fuzz",
    max_examples=N_EXAMPLES,
    derandomize=True,  # reproducible: the same examples on every run
    database=None,
    deadline=timedelta(seconds=1),  # "never takes > 1 s per example"
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
FUZZ = settings.get_profile("formula-fuzz")
PARAMS = {"a": 0.75}
BOX = (-3.0, 3.0, -3.0, 3.0)
COUNTS: dict[str, int] = {}


def bump(key: str, n: int = 1) -> None:
    COUNTS[key] = COUNTS.get(key, 0) + n


def assert_safe(text: str) -> str:
    """Compile ``text``; anything but FormulaError, or a compiled energy misbehaving, fails."""
    with warnings.catch_warnings(record=True) as caught:  # e.g. the parser's SyntaxWarning
        warnings.simplefilter("always")
        try:
            energy = compile_formula(text, PARAMS)
        except FormulaError as exc:
            assert exc.column is None or 1 <= exc.column <= len(text) + 1
            energy = None
    assert not caught, [str(w.message) for w in caught]
    if energy is None:
        return "refused"
    X = torch.tensor([[0.0, 0.0], [1.0, -2.0], [-2.5, 0.5]], dtype=torch.float64)
    e, g = energy_and_grad(energy, X)
    assert e.shape == (3,) and g.shape == (3, 2) and e.dtype == torch.float64
    try:
        check_energy_on_grid(energy, BOX, n=16)
    except ValidationError:
        return "compiled, grid refused"
    return "compiled"


# ---------------------------------------------------------------- (a) random text
TOKENS = [*FUNCTIONS, "x", "y", "r", "theta", "pi", "e", "a", "z", "(", ")", ",", "+", "-", "*",
          "/", "**", " ", ".", "[", "]", "'", "=", ":", "lambda", "if", "0", "1", "9", "2.5",
          "1e3", "e-", "_", "__class__", "\x00", "ｘ"]  # fmt: skip


SOUP = st.lists(st.sampled_from(TOKENS), max_size=60).map("".join)  # near-formula token soup


def test_random_text_only_raises_formula_error():
    @FUZZ
    @given(st.one_of(st.text(max_size=300), SOUP))
    def run(text: str) -> None:
        bump("a: " + assert_safe(text))

    run()
    tried = sum(v for k, v in COUNTS.items() if k.startswith("a: "))
    print(f"(a) random text: {tried} inputs {dict(sorted(COUNTS.items()))}")
    assert tried >= min(N_EXAMPLES, 100)


# ---------------------------------------------------------------- (b) valid formula trees
# A tree is ("num", float) | ("var", name) | ("neg"|"pos"|"paren", t) | ("bin", op, l, r)
# | ("call", name, [args]).  render() prints it with the fewest parentheses Python's precedence
# allows ("paren" adds redundant ones), so the parser's precedence is what is tested.
NUMBERS = st.one_of(
    st.sampled_from([0.0, 1.0, 2.0, 0.5, 3.0, 10.0, 1e-3, 2.5, 100.0]),
    st.integers(0, 1000).map(float),
    st.floats(0, 50, allow_nan=False, allow_infinity=False),
)
LEAVES = st.one_of(
    NUMBERS.map(lambda v: ("num", v)),
    st.sampled_from(["x", "y", "r", "theta", "pi", "e", "a"]).map(lambda n: ("var", n)),
)
VARIADIC = ["min", "max", "logsumexp"]
UNARY = [n for n, (lo, hi, _) in FUNCTIONS.items() if lo == hi == 1]


def args4(kids: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(kids, min_size=1, max_size=4)


def _extend(kids: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.tuples(st.sampled_from(["neg", "pos", "paren"]), kids),
        st.tuples(st.just("bin"), st.sampled_from(["+", "-", "*", "/", "**"]), kids, kids),
        st.tuples(st.just("call"), st.sampled_from(UNARY), st.lists(kids, min_size=1, max_size=1)),
        st.tuples(st.just("call"), st.just("atan2"), st.lists(kids, min_size=2, max_size=2)),
        st.tuples(st.just("call"), st.just("clamp"), st.lists(kids, min_size=3, max_size=3)),
        st.tuples(st.just("call"), st.sampled_from(VARIADIC), args4(kids)),
    )


TREES = st.recursive(LEAVES, _extend, max_leaves=14)
PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "**": 4}  # unary: 3, atoms: 5


def render(t: tuple) -> tuple[str, int]:
    kind = t[0]
    if kind == "num":
        return repr(t[1]), 5
    if kind == "var":
        return t[1], 5
    if kind == "paren":
        return f"({render(t[1])[0]})", 5
    if kind == "call":
        return f"{t[1]}({', '.join(render(a)[0] for a in t[2])})", 5
    if kind in ("neg", "pos"):
        s, p = render(t[1])
        return ("-" if kind == "neg" else "+") + (s if p >= 3 else f"({s})"), 3
    op, (ls, lp), (rs, rp) = t[1], render(t[2]), render(t[3])
    p = PREC[op]
    if op == "**":  # right-associative; its left operand binds tighter than unary minus
        left_paren, right_paren = lp < 5, rp < 3
    else:
        left_paren, right_paren = lp < p, rp <= p
    ls = f"({ls})" if left_paren else ls
    rs = f"({rs})" if right_paren else rs
    return f"{ls} {op} {rs}", p


# Reference evaluator: numpy float64, returning (value, E) where E bounds |torch - reference|
# at each point.  Each operation adds both implementations' rounding (U for correctly rounded
# + - * / sqrt: half an ulp each; UT for libm functions: 4 ulp each, the worst documented
# accuracy among glibc, SLEEF and numpy's SIMD routines; TINY for subnormal results), and
# propagates the operands' bounds by the worst case over the interval [v - E, v + E].
U, UT, TINY = 2.0**-52, 8 * 2.0**-52, 2.0**-1070
INF = np.inf


def rnd(v: np.ndarray, u: float) -> np.ndarray:
    return u * np.abs(v) + TINY


def ref_eval(t: tuple, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    kind, zero = t[0], np.zeros_like(x)
    if kind == "num":
        return zero + t[1], zero
    if kind == "var":
        name = t[1]
        if name in ("x", "y"):
            return (x if name == "x" else y), zero
        if name == "r":
            r = np.sqrt(x * x + y * y)
            return r, rnd(r, 3 * U)
        if name == "theta":
            th = np.arctan2(y, x)
            return th, rnd(th, UT)
        return zero + {"pi": math.pi, "e": math.e, **PARAMS}[name], zero
    if kind == "paren" or kind == "pos":
        return ref_eval(t[1], x, y)
    if kind == "neg":
        v, E = ref_eval(t[1], x, y)
        return -v, E
    if kind == "bin":
        (a, ea), (b, eb) = ref_eval(t[2], x, y), ref_eval(t[3], x, y)
        return _ref_bin(t[1], a, ea, b, eb)
    args = [ref_eval(s, x, y) for s in t[2]]
    return _ref_call(t[1], args)


def _ref_bin(op, a, ea, b, eb):
    if op in "+-":
        v = a + b if op == "+" else a - b
        return v, ea + eb + rnd(v, U)
    if op == "*":
        v = a * b
        return v, np.abs(a) * eb + np.abs(b) * ea + ea * eb + rnd(v, U)
    if op == "/":
        v, den = a / b, np.abs(b) - eb
        return v, np.where(den > 0, (ea + np.abs(v) * eb) / den, INF) + rnd(v, U)
    v = np.power(a, b)  # |a'^b' - a^b| <= |a^b| expm1(|b| dl + |ln|a|| eb + eb dl)
    aa = np.abs(a)
    dl = np.where(ea < aa, -np.log1p(-ea / np.where(aa > 0, aa, 1)), INF)  # |ln|a'| - ln|a||
    d = np.abs(b) * dl + np.abs(np.log(np.where(aa > 0, aa, 1))) * eb + eb * dl
    e = np.where((a < 0) & (eb > 0), INF, np.abs(v) * np.expm1(d))  # b' may leave the integers
    at_zero = np.where((ea == 0) & ((eb == 0) | (b > eb)), 0.0, INF)
    return v, np.where(a == 0, at_zero, e) + rnd(v, UT)


def _ref_call(name, args):
    vs, es = [v for v, _ in args], [e for _, e in args]
    a, ea = vs[0], es[0]
    emax = np.max(es, axis=0)
    if name == "exp":
        v = np.exp(a)
        return v, np.abs(v) * np.expm1(ea) + rnd(v, UT)
    if name == "log":
        v = np.log(a)
        return v, np.where(ea < a, -np.log1p(-ea / np.where(a > 0, a, 1)), INF) + rnd(v, UT)
    if name == "log1p":
        v, u = np.log1p(a), 1 + a
        return v, np.where(ea < u, -np.log1p(-ea / np.where(u > 0, u, 1)), INF) + rnd(v, UT)
    if name == "sqrt":
        v = np.sqrt(a)
        lo = np.sqrt(np.maximum(a - ea, 0))
        e = np.where(ea == 0, 0.0, ea / np.where(v + lo > 0, v + lo, 1))
        return v, np.where(ea <= a, e, INF) + rnd(v, UT)
    if name in ("abs", "relu"):
        v = np.abs(a) if name == "abs" else np.maximum(a, 0)
        return v, ea + TINY
    if name in ("sin", "cos", "tanh"):
        v = {"sin": np.sin, "cos": np.cos, "tanh": np.tanh}[name](a)
        return v, np.minimum(ea, 2) + rnd(v, UT)
    if name == "tan":
        v, c = np.tan(a), np.abs(np.cos(a))
        return v, np.where(c > ea, ea / np.where(c > ea, c - ea, 1) ** 2, INF) + rnd(v, UT)
    if name == "sinh":
        v = np.sinh(a)
        return v, np.cosh(np.abs(a) + ea) * ea + rnd(v, UT)
    if name == "cosh":
        v = np.cosh(a)
        return v, np.sinh(np.abs(a) + ea) * ea + rnd(v, UT)
    if name == "sigmoid":
        q = np.exp(-np.abs(a))  # stable both ways
        v = np.where(a >= 0, 1 / (1 + q), q / (1 + q))
        return v, np.minimum(ea / 4, 1) + rnd(v, UT)
    if name == "softplus":
        v = np.logaddexp(a, 0)
        return v, ea + rnd(v, UT)
    if name == "square":
        v = a * a
        return v, 2 * np.abs(a) * ea + ea * ea + rnd(v, U)
    if name == "atan2":
        b, eb = vs[1], es[1]
        v, rho, d = np.arctan2(a, b), np.hypot(a, b), np.hypot(ea, eb)
        e = np.where(d < rho, np.arcsin(np.minimum(d / np.where(rho > 0, rho, 1), 1)), INF)
        cut = (b - eb <= 0) & (np.abs(a) <= ea) & ((ea > 0) | (eb > 0))  # may cross the branch cut
        return v, np.where(cut, INF, e) + rnd(v, UT)
    if name == "clamp":
        return np.minimum(np.maximum(a, vs[1]), vs[2]), emax + TINY
    if name in ("min", "max"):
        return (np.min if name == "min" else np.max)(vs, axis=0), emax + TINY
    assert name == "logsumexp"
    m = np.max(vs, axis=0)
    v = m + np.log(np.sum(np.exp(np.array(vs) - m), axis=0))
    k = len(vs)  # exp/log/sum/add roundings: absolute UT(1 + ln k) + (k + 2)U, plus U|v|
    return v, emax + 2 * (UT * (1 + math.log(k)) + (k + 2) * U) + 2 * U * np.abs(v) + TINY


_g = np.random.default_rng(0)
PTS = np.concatenate([[[0, 0], [1, 0], [0, -1], [-1, 0], [-2, 0]], _g.uniform(-3, 3, (59, 2))])


def test_generated_formulas_match_reference():
    stats = {"examples": 0, "points compared": 0, "examples with a comparison": 0}

    @FUZZ
    @given(TREES)
    def run(tree: tuple) -> None:
        text = render(tree)[0]
        energy = compile_formula(text, PARAMS)  # a valid formula must compile
        got = energy(torch.tensor(PTS, dtype=torch.float64)).numpy()
        with np.errstate(all="ignore"):
            v, E = ref_eval(tree, PTS[:, 0], PTS[:, 1])
            ok = np.isfinite(v) & np.isfinite(E) & (np.abs(v) + 2 * E < 1e300)
            # E bounds |torch - reference| (see above); the factor 2 only absorbs the
            # rounding made while computing E itself.  A parsing or semantic bug changes
            # values by O(1) at most points, far outside it.
            bad = ok & ~(np.abs(got - v) <= 2 * E)
        assert not bad.any(), (text, PTS[bad][:3], got[bad][:3], v[bad][:3], E[bad][:3])
        stats["examples"] += 1
        stats["points compared"] += int(ok.sum())
        stats["examples with a comparison"] += int(ok.any())
        assert_safe(text)

    run()
    print(f"(b) generated formulas: {stats}")
    assert stats["examples"] >= min(N_EXAMPLES, 100)
    # Not vacuous: most generated formulas are finite with a tight bound at some points.
    assert stats["examples with a comparison"] >= 0.5 * stats["examples"]


# ---------------------------------------------------------------- (c) mutated formulas
NASTY_CHARS = st.one_of(
    st.characters(),
    st.sampled_from([*"()[]{},.'\"+-*/^%@#:=<>!~&|\\_ \t\n0123456789exyr", "\x00", "ｘ"]),
)
MUTATIONS = st.lists(
    st.tuples(st.sampled_from(["insert", "delete", "replace"]), st.floats(0, 1), NASTY_CHARS),
    min_size=1,
    max_size=4,
)


def mutate(text: str, edits: list) -> str:
    for kind, where, ch in edits:
        i = min(int(where * (len(text) + 1)), len(text))
        if kind == "insert":
            text = text[:i] + ch + text[i:]
        elif kind == "delete":
            text = text[:i] + text[i + 1 :]
        else:
            text = text[:i] + ch + text[i + 1 :]
    return text


def test_mutated_formulas_only_raise_formula_error():
    outcomes: dict[str, int] = {}

    @FUZZ
    @given(TREES, MUTATIONS)
    def run(tree: tuple, edits: list) -> None:
        result = assert_safe(mutate(render(tree)[0], edits))
        outcomes[result] = outcomes.get(result, 0) + 1

    run()
    print(f"(c) mutated formulas: {outcomes}")
    assert sum(outcomes.values()) >= min(N_EXAMPLES, 100)
