"""Rule attribute schemas and the checks applied when a BUILD file calls a rule."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from kiln.build_rules.errors import UserError
from kiln.build_rules.labels import Label, parse_label

_KINDS = {
    "label": (str,),
    "label_list": (list,),
    "string": (str,),
    "string_list": (list,),
    "output_list": (list,),  # paths of files the rule writes, relative to its package
    "string_dict": (dict,),
    "shape_dict": (dict,),  # name -> list of positive ints: model(input_shapes = {"x": [1, 3, 224, 224]})
    "value_dict": (dict,),  # name -> list of numbers: model(input_values = {"sr": [16000]})
    "shape_dict_list": (list,),  # shape_dicts: model(shapes = [{"ids": [1, 16]}, {"ids": [1, 64]}])
    "number_dict": (dict,),  # name -> number: model(pad_values = {"ids": 0})
    "int": (int,),
    "int_list": (list,),
    "bool": (bool,),
}


@dataclass(frozen=True)
class Attr:
    kind: str
    default: Any = None
    mandatory: bool = False
    doc: str = ""
    executable_config: bool = False  # label attrs built for the machine running the build (tools)


COMMON_ATTRS = {
    "name": Attr("string", mandatory=True),
    "visibility": Attr("string_list", ()),
    "tags": Attr("string_list", ()),
    "timeout": Attr("int", 0, doc="Seconds each of the target's actions may run (0: --action_timeout)."),
}


def check_attrs(rule: str, schema: dict[str, Attr], given: dict[str, Any], package: str) -> dict[str, Any]:
    """Validate `given` against `schema`; resolve labels relative to `package`; fill defaults."""
    full = {**COMMON_ATTRS, **schema}
    for key in given:
        if key not in full:
            close = difflib.get_close_matches(key, full, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise UserError(f"{rule}() got an unknown attribute '{key}'{hint}")
    values = {}
    for key, attr in full.items():
        if key not in given or given[key] is None:
            if attr.mandatory:
                raise UserError(f"{rule}() missing mandatory attribute '{key}'")
            values[key] = attr.default
            continue
        values[key] = _convert(rule, key, attr, given[key], package)
    check_package_path(rule, "name", values["name"])
    return values


def check_package_path(rule: str, key: str, path: str) -> None:
    """A target name or output path must stay inside its package's output directory."""
    if path.startswith("/"):
        raise UserError(f"{rule}(): {key} '{path}' must be relative to the package, not absolute")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise UserError(f"{rule}(): {key} '{path}' must be a normalized path inside the package "
                        "(no '..', '.' or empty segments)")


def _convert(rule: str, key: str, attr: Attr, value: Any, package: str) -> Any:
    expected = _KINDS[attr.kind]
    if attr.kind == "int" and isinstance(value, bool) or not isinstance(value, expected):
        kind = "string_list" if attr.kind == "output_list" else attr.kind
        raise UserError(f"{rule}(): attribute '{key}' must be a {kind}, got {type(value).__name__}")
    if attr.kind == "label":
        return parse_label(value, package)
    if attr.kind == "label_list":
        return tuple(parse_label(_string(rule, key, v), package) for v in value)
    if attr.kind == "string_list":
        return tuple(_string(rule, key, v) for v in value)
    if attr.kind == "output_list":
        return _outputs(rule, key, tuple(_string(rule, key, v) for v in value))
    if attr.kind == "string_dict":
        return {_string(rule, key, k): _string(rule, key, v) for k, v in value.items()}
    if attr.kind == "shape_dict":
        return {_string(rule, key, k): _shape(rule, key, k, v) for k, v in sorted(value.items())}
    if attr.kind == "shape_dict_list":
        return tuple(_shape_dict(rule, f"{key}[{i}]", v) for i, v in enumerate(value))
    if attr.kind == "number_dict":
        return {_string(rule, key, k): _number(rule, key, k, v) for k, v in sorted(value.items())}
    if attr.kind == "int_list":
        return tuple(_int(rule, key, v) for v in value)
    if attr.kind == "value_dict":
        return {_string(rule, key, k): _numbers(rule, key, k, v) for k, v in sorted(value.items())}
    return value


def _outputs(rule: str, key: str, paths: tuple[str, ...]) -> tuple[str, ...]:
    for path in paths:
        check_package_path(rule, key, path)
    seen = set()
    for path in paths:
        if path in seen:
            raise UserError(f"{rule}(): {key} lists '{path}' twice")
        seen.add(path)
    for path in paths:
        for other in paths:
            if other.startswith(path + "/"):
                raise UserError(f"{rule}(): {key} has '{path}' as a file and as the directory of '{other}'")
    return paths


def _int(rule: str, key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise UserError(f"{rule}(): {key} must be a list of ints, got an item {value!r}")
    return value


def _shape(rule: str, key: str, name: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or \
            not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in value):
        raise UserError(f"{rule}(): {key}[\"{name}\"] must be a list of positive ints, got {value!r}")
    return tuple(value)


def _shape_dict(rule: str, key: str, value: Any) -> dict[str, tuple[int, ...]]:
    if not isinstance(value, dict) or not value:
        raise UserError(f"{rule}(): {key} must be a dict of input names to shapes, got {value!r}")
    return {_string(rule, key, k): _shape(rule, key, k, v) for k, v in sorted(value.items())}


def _number(rule: str, key: str, name: str, value: Any) -> int | float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise UserError(f"{rule}(): {key}[\"{name}\"] must be a number, got {value!r}")
    return value


def _numbers(rule: str, key: str, name: str, value: Any) -> tuple[int | float, ...]:
    if not isinstance(value, list) or not value or \
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise UserError(f"{rule}(): {key}[\"{name}\"] must be a list of numbers, got {value!r}")
    return tuple(value)


def _string(rule: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise UserError(f"{rule}(): attribute '{key}' must hold strings, got {type(value).__name__}")
    return value


def label_values(value: Any) -> tuple[Label, ...]:
    if isinstance(value, Label):
        return (value,)
    if isinstance(value, tuple) and value and isinstance(value[0], Label):
        return value
    return ()
