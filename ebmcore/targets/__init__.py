"""2D target energies: the registry of analytic targets and user-typed formulas."""

from ebmcore.targets.formula import FormulaError, compile_formula, formula_target
from ebmcore.targets.registry import TARGETS, make_target

__all__ = ["TARGETS", "FormulaError", "compile_formula", "formula_target", "make_target"]
