"""A local derivative written as a formula, read off the derivative table's own rule.

The page writes `∂L/∂d = f = -2.0` for `L = d * f`: the rule of `*` for its first input is
`lambda m, g, out, a, b: g * b`, which the compiler's tracer (`RuleTemplates`) turns into the
template `{0} * {3}`. With the upstream gradient g = 1 (a local derivative is the rule's factor)
and the node's own names filled in, that is `f`. Nothing here computes a number: the numbers
next to a formula come from running the rule itself (`recorder.local_derivatives`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

from ..compiler.rule_source import DERIVATIVE, RuleTemplates
from ..ops import Op

__all__ = ["local_formula"]

_TEMPLATES = RuleTemplates()
_G = "\x00g"  # stands for the upstream gradient while the template is filled in; never in a name
# The backend's helper functions, as a reader writes them. The arguments are already filled in.
_HELPERS: dict[str, Callable[[list[str]], str]] = {
    "power_rule": lambda args: f"{args[1]} * {args[0]} ** ({args[1]} - 1)",
    "xlogy": lambda args: f"{args[0]} * log({args[1]})",
    "step": lambda args: f"(1 if {args[0]} > 0 else 0)",
    "floor_divide": lambda args: f"floor({args[0]} / {args[1]})",
}
# A helper call with placeholder arguments, M_cos({2}) or M_sqrt(({2} - 1) * ({2} + 1)), whose
# arguments hold no other helper call: nested calls (M_step(M_abs({1}))) are rewritten inside out.
_NO_CALL = r"(?:(?!M_)[^()])"
_CALL = re.compile(rf"M_(\w+)\(((?:{_NO_CALL}|\({_NO_CALL}*\))*)\)")


def _arguments(text: str) -> list[str]:
    """`a, (b, c)` as ["a", "(b, c)"]: split at the commas outside parentheses."""
    args, depth, start = [], 0, 0
    for k, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            args.append(text[start:k].strip())
            start = k + 1
    return [*args, text[start:].strip()]


def _operand(name: str) -> str:
    """A name as an operand of a formula: `x`, `2.0`, but `(x1*w1)` and `(-3.0)` in parentheses."""
    if name.isidentifier() or re.fullmatch(r"\d+(\.\d*)?(e[+-]?\d+)?", name):
        return name
    return f"({name})"


def _without_g(text: str) -> str:
    """The filled-in rule with g = 1, without a `1 *`: `g * b` is `b`, `-g * out / b` is `-out / b`."""
    if text == _G:
        return "1"
    if text == f"-{_G}":
        return "-1"
    for prefix, replacement in ((f"{_G} * ", ""), (f"-{_G} * ", "-"), (f"{_G} / ", "1 / ")):
        if text.startswith(prefix) and _G not in text[len(prefix) :]:
            return replacement + text[len(prefix) :]
    return text.replace(_G, "1")


def local_formula(op: Op, i: int, out: str, inputs: Sequence[str]) -> str | None:
    """The local derivative d(out)/d(input i) of a table op as a formula over the node's names.

    `tanh` gives `1 - o * o`, `*` gives the other operand, `+` gives `1`. None where the rule
    cannot be traced into a formula (a rule that branches on its operands, a hand-built node).
    """
    if op.hand_built:
        return None
    templates = _TEMPLATES
    if op.fingerprint:
        # A row made with defop: its rules are wrapped in result checks (`chainrule.userops`), which
        # are no arithmetic, so trace the user's own rules; afresh, since defop(..., replace=True)
        # may have given the name other rules since.
        unchecked = tuple(getattr(rule, "__wrapped__", rule) for rule in op.derivatives)
        templates, op = RuleTemplates(), dataclasses.replace(op, derivatives=unchecked)
    template = templates.get(op, DERIVATIVE, i, len(inputs))
    if template is None:
        return None

    def helper(match: re.Match[str]) -> str:
        name, args = match.group(1), _arguments(match.group(2))
        if name in _HELPERS:
            return _HELPERS[name](args)
        return f"{name}({', '.join(args)})"

    while True:  # inside out, one level of nested calls per pass
        rewritten = _CALL.sub(helper, template)
        if rewritten == template:
            break
        template = rewritten
    text = template.format(_G, _operand(out), *(_operand(name) for name in inputs))
    return _unwrapped(_without_g(text))


def _unwrapped(text: str) -> str:
    """`1 - o * o` for `(1 - o * o)`: parentheses around the whole formula say nothing."""
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for k, ch in enumerate(text):
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if depth == 0 and k < len(text) - 1:
                return text  # the first parenthesis closes early: (a) * (b)
        text = text[1:-1]
    return text
