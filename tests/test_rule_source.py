"""The traced rule templates that compiled float mode and the explorer's formulas are made from."""

from __future__ import annotations

import dataclasses

from chainrule.compiler.rule_source import DERIVATIVE, FORWARD, RuleTemplates
from chainrule.ops import OPS


def test_templates_are_traced_from_the_rows_rules() -> None:
    templates = RuleTemplates()
    assert templates.get(OPS["mul"], FORWARD, 0, 2) == "{0} * {1}"
    assert templates.get(OPS["mul"], DERIVATIVE, 1, 2) == "{0} * {2}"


def test_a_row_with_the_name_of_another_gets_its_own_templates() -> None:
    # A name can be given other rules (defop(..., replace=True)): one RuleTemplates must not hand
    # the new row the template it traced for the old one.
    templates = RuleTemplates()
    mul = OPS["mul"]
    impostor = dataclasses.replace(mul, forward=lambda m, a, b: a + b)
    assert templates.get(mul, FORWARD, 0, 2) == "{0} * {1}"
    assert templates.get(impostor, FORWARD, 0, 2) == "{0} + {1}"
