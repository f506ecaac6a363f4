"""Registry values ↔ OSC arguments, in both directions, for every parameter kind.

Incoming: the argument list of a message becomes the raw value `Param.coerce` expects.
Outgoing: a stored value becomes the arguments echoed to controllers and replies.
"""

from __future__ import annotations

from typing import Any

from livevace.params import Param, ParamError, format_prompts

LIST_KINDS = ("floats", "ints", "strs", "prompts")


def value_from_args(p: Param, args: list[Any]) -> Any:
    """The raw value carried by a message's arguments (coerced later by the registry)."""
    if p.kind == "trigger":
        return True
    if not args:
        raise ParamError(f"{p.name}: no value given")
    if p.kind in LIST_KINDS:
        return args[0] if len(args) == 1 else list(args)
    if len(args) != 1:
        raise ParamError(f"{p.name}: expects one value, got {len(args)}")
    return args[0]


def osc_args(p: Param, value: Any) -> list[Any]:
    """The OSC arguments that carry `value` (booleans as 0/1: every host reads ints)."""
    if p.kind in ("bool", "trigger"):
        return [int(bool(value))]
    if p.kind == "prompts":
        return [format_prompts(value)]
    if isinstance(value, tuple):
        return list(value)
    return [value]


def json_value(p: Param, value: Any) -> list[Any]:
    """The value as a JSON array (OSCQuery VALUE): booleans stay booleans."""
    if p.kind in ("bool", "trigger"):
        return [bool(value)]
    return osc_args(p, value)


def type_tags(p: Param, value: Any) -> str:
    """The OSC type-tag string of the value as sent (OSCQuery TYPE)."""
    tag = {"float": "f", "floats": "f", "int": "i", "ints": "i", "bool": "T", "trigger": "I"}
    if p.kind in ("floats", "ints", "strs"):
        return (tag.get(p.kind, "s")) * max(1, len(value))
    return tag.get(p.kind, "s")


def describe_args(p: Param) -> str:
    """Human form of the accepted arguments, for the address table."""
    forms = {
        "float": "f", "int": "i", "bool": "i/T/F (0/1)", "str": "s", "enum": "s or i (index)",
        "trigger": "(none) or any", "prompts": "s, or s f s f … (text, weight)",
    }
    if p.kind in ("floats", "ints"):
        return f"{p.kind[0]} ×1..{p.max_len}" if p.max_len > 1 else p.kind[0]
    if p.kind == "strs":
        return f"s ×0..{p.max_len}"
    return forms[p.kind]


def _num(v: float | int) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def describe_range(p: Param) -> str:
    if p.kind == "enum":
        return " · ".join(p.choices)
    if p.min is not None and p.max is not None:
        unit = f" {p.unit}" if p.unit else ""
        return f"{_num(p.min)} … {_num(p.max)}{unit}"
    return ""


def describe_default(p: Param) -> str:
    value = p.default
    if p.kind == "trigger":
        return ""
    if p.kind == "prompts":
        return format_prompts(value)
    if p.kind == "bool":
        return "1" if value else "0"
    if isinstance(value, tuple):
        return " ".join(_num(v) if isinstance(v, float) else str(v) for v in value) or "(none)"
    if isinstance(value, float):
        return _num(value)
    return str(value) if value != "" else "(empty)"
