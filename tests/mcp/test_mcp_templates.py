"""``{{variable}}`` prompt arguments: which placeholders a prompt has and how they are filled in."""

from __future__ import annotations

import pytest

from vibexp.api.mcp.templates import MissingArguments, placeholders, render
from vibexp.core.errors import InvalidInput


def test_placeholders_are_distinct_and_in_order() -> None:
    assert placeholders("{{b}} {{ a }} {{b}} {{_c9}}") == ["b", "a", "_c9"]
    assert placeholders("no args, {single} braces, {{9bad}} {{with-dash}} {{}}") == []


def test_render_fills_every_placeholder_in_one_pass() -> None:
    assert render("Hi {{ name }}, {{name}}!", {"name": "Ada"}) == "Hi Ada, Ada!"
    assert render("{{a}}{{b}}", {"a": "{{b}}", "b": "x"}) == "{{b}}x"  # values are not expanded again
    assert render("plain", None) == "plain"
    assert render("{{a}}", {"a": "1", "unused": "2"}) == "1"


def test_missing_arguments_are_invalid_input_naming_each() -> None:
    with pytest.raises(MissingArguments) as err:
        render("{{a}} {{b}} {{c}}", {"b": "x"})
    assert isinstance(err.value, InvalidInput)
    assert err.value.missing == ["a", "c"]
    assert "a, c" in err.value.message
