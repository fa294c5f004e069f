"""The Commerce API contract as Sequenzy's official SDK states it, checked strictly.

Read from the installed `sequenzy` package (a test dependency only; the relay sends with
`requests`), not copied from it:
- the endpoints: every method of every synchronous `Raw*Client` in the SDK, from its source
  (the `httpx_client.request(path, method=..., json={...}, params={...})` call): the path
  with its parameters, the HTTP method, the wire name of every body field and query
  parameter and the Python parameter behind it;
- the types: each parameter's annotation (required when it has no default), and for nested
  objects the SDK's pydantic models, field by alias.

The SDK itself is lenient: its models keep unknown keys, its enums are open
(`Union[Literal[...], Any]`), pydantic coerces "1620" to 1620, and top-level arguments are
not checked at all. This oracle refuses, at any depth: unknown keys, values outside an
enum's literals, wrong scalar types (no coercion; a bool is not an int), date-times without
an offset, missing required fields, and the list limits the SDK documents only in prose.

    problems = check_request("POST", "/api/v1/orders", "", body)   # [] when it conforms

tests/fakeapi.py runs it on every request it receives; a violation fails the test.
"""

from __future__ import annotations

import ast
import collections.abc
import datetime as dt
import importlib
import inspect
import pkgutil
import re
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pydantic
import sequenzy

API_PREFIX = "/api/v1/"

# Limits the SDK states in docstrings, not in types: (method, path) -> {field: (min, max)}.
LIST_LIMITS: dict[tuple[str, str], dict[str, tuple[int, int]]] = {
    ("POST", "products"): {"products": (1, 100)},  # "Creates or updates up to 100 products"
    ("POST", "subscribers/events/imports"): {"events": (1, 25)},  # "up to 25 events"
    ("POST", "subscribers/imports"): {"subscribers": (1, 5000)},  # "up to 5,000 contacts"
}
# Fields the prose says may not be null although their type is Optional.
NOT_NULL: dict[tuple[str, str], frozenset[str]] = {
    # "Omit to keep unchanged, or send an empty string to clear; null is not accepted"
    ("PATCH", "subscribers/external"): frozenset({"firstName", "lastName"}),
    ("PATCH", "subscribers/external/{external_id_path_param}"): frozenset(
        {"firstName", "lastName"}
    ),
}


@dataclass(frozen=True)
class Field:
    wire: str
    annotation: Any
    required: bool


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str  # relative to /api/v1/, e.g. "subscribers/external/{external_id_path_param}"
    function: str  # "subscribers.update_by_external_id_path", for messages
    body: tuple[Field, ...] | None  # None: the SDK sends no JSON body
    query: tuple[Field, ...]
    returns: Any  # the success body's type

    @property
    def pattern(self) -> re.Pattern[str]:
        parts = re.split(r"(\{[^}]+\})", self.template)
        regex = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
        return re.compile(f"^{regex}$")

    @property
    def static(self) -> bool:
        return "{" not in self.template


# --- reading the SDK --------------------------------------------------------------------


def _raw_client_modules() -> list[str]:
    root = Path(sequenzy.__file__).parent
    names = []
    for info in pkgutil.walk_packages([str(root)], prefix="sequenzy."):
        if info.name.endswith(".raw_client"):
            names.append(info.name)
    return sorted(names)


def _param_of(node: ast.expr) -> str | None:
    """The parameter behind a value in the request's json/params literal."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):  # convert_and_respect_annotation_metadata(object_=x, ...)
        for keyword in node.keywords:
            if keyword.arg == "object_" and isinstance(keyword.value, ast.Name):
                return keyword.value.id
        if node.args and isinstance(node.args[0], ast.Name):
            return node.args[0].id
    return None


def _template(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        out = []
        for part in node.values:
            if isinstance(part, ast.Constant):
                out.append(str(part.value))
            elif isinstance(part, ast.FormattedValue):
                inner = part.value
                if isinstance(inner, ast.Call) and inner.args:
                    inner = inner.args[0]
                out.append("{" + (inner.id if isinstance(inner, ast.Name) else "param") + "}")
        return "".join(out)
    return None


def _request_call(function: ast.FunctionDef) -> ast.Call | None:
    for node in ast.walk(function):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "request"
            and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr == "httpx_client"
        ):
            return node
    return None


def _literal_map(node: ast.expr | None) -> dict[str, str] | None:
    if not isinstance(node, ast.Dict):
        return None
    out = {}
    for key, value in zip(node.keys, node.values, strict=True):
        param = _param_of(value)
        if isinstance(key, ast.Constant) and isinstance(key.value, str) and param:
            out[key.value] = param
    return out


def _fields(mapping: dict[str, str], function: Any) -> tuple[Field, ...]:
    hints = typing.get_type_hints(function, include_extras=True)
    signature = inspect.signature(function)
    fields = []
    for wire, param in mapping.items():
        parameter = signature.parameters[param]
        fields.append(
            Field(wire, hints.get(param, Any), parameter.default is inspect.Parameter.empty)
        )
    return tuple(fields)


@cache
def endpoints() -> tuple[Endpoint, ...]:
    found = []
    for module_name in _raw_client_modules():
        module = importlib.import_module(module_name)
        tree = ast.parse(Path(module.__file__ or "").read_text())
        group = module_name.removeprefix("sequenzy.").removesuffix(".raw_client")
        for cls in tree.body:
            if not (
                isinstance(cls, ast.ClassDef)
                and cls.name.startswith("Raw")
                and cls.name.endswith("Client")
            ):
                continue
            for function in cls.body:
                if not isinstance(function, ast.FunctionDef) or function.name.startswith("_"):
                    continue
                call = _request_call(function)
                if call is None or not call.args:
                    continue
                template = _template(call.args[0])
                keywords = {k.arg: k.value for k in call.keywords}
                method_node = keywords.get("method")
                if template is None or not isinstance(method_node, ast.Constant):
                    continue
                real = getattr(getattr(module, cls.name), function.name)
                body = _literal_map(keywords.get("json"))
                query = _literal_map(keywords.get("params")) or {}
                returns = typing.get_type_hints(real).get("return")
                found.append(
                    Endpoint(
                        method=str(method_node.value),
                        template=template,
                        function=f"{group}.{function.name}",
                        body=None if body is None else _fields(body, real),
                        query=_fields(query, real),
                        returns=(typing.get_args(returns) or (Any,))[0],
                    )
                )
    return tuple(found)


def endpoint_for(method: str, path: str) -> Endpoint | None:
    """The SDK endpoint a request goes to (`path` relative to /api/v1/, no query)."""
    candidates = [e for e in endpoints() if e.method == method and e.pattern.match(path)]
    candidates.sort(key=lambda e: (not e.static, e.template.count("{")))
    return candidates[0] if candidates else None


# --- checking values --------------------------------------------------------------------


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _datetime_problem(value: str) -> str | None:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return "not an ISO 8601 date-time"
    if parsed.tzinfo is None:
        return "a date-time without an offset (add Z or +00:00)"
    return None


def check_value(value: Any, tp: Any, where: str, out: list[str]) -> None:
    """Append to `out` every way `value` (decoded JSON) breaks type `tp`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        check_value(value, args[0], where, out)
        return
    if tp is Any:
        return
    if origin is typing.Union:
        if value is None and type(None) in args:
            return
        literals = [a for a in args if typing.get_origin(a) is typing.Literal]
        if literals and Any in args:  # Fern's open enum: strictly, one of the literals
            allowed = [v for lit in literals for v in typing.get_args(lit)]
            if value not in allowed:
                out.append(f"{where}: {value!r} is not one of {allowed}")
            return
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            check_value(value, options[0], where, out)
            return
        for option in options:
            attempt: list[str] = []
            check_value(value, option, where, attempt)
            if not attempt:
                return
        out.append(f"{where}: matches none of {', '.join(_type_name(o) for o in options)}")
        return
    if origin is typing.Literal:
        if value not in args:
            out.append(f"{where}: {value!r} is not one of {list(args)}")
        return
    if value is None:
        out.append(f"{where}: null is not allowed")
        return
    if tp is str:
        if not isinstance(value, str):
            out.append(f"{where}: expected a string, got {type(value).__name__}")
    elif tp is bool:
        if not isinstance(value, bool):
            out.append(f"{where}: expected a boolean, got {value!r}")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            out.append(f"{where}: expected an integer, got {value!r}")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            out.append(f"{where}: expected a number, got {value!r}")
    elif tp is dt.datetime:
        problem = _datetime_problem(value) if isinstance(value, str) else "not a string"
        if problem:
            out.append(f"{where}: {problem}: {value!r}")
    elif tp is dt.date:
        if not (isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)):
            out.append(f"{where}: expected a date YYYY-MM-DD, got {value!r}")
    elif origin in (list, collections.abc.Sequence):
        if not isinstance(value, list):
            out.append(f"{where}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            check_value(item, args[0] if args else Any, f"{where}[{i}]", out)
    elif origin in (dict, collections.abc.Mapping):
        if not isinstance(value, dict):
            out.append(f"{where}: expected an object, got {type(value).__name__}")
            return
        for key, item in value.items():
            check_value(item, args[1] if len(args) > 1 else Any, f"{where}.{key}", out)
    elif _is_model(tp):
        check_object(value, model_fields(tp), where, out)
    else:
        out.append(f"{where}: the oracle does not know the type {tp!r}")


@cache
def model_fields(model: type[pydantic.BaseModel]) -> tuple[Field, ...]:
    return tuple(
        Field(info.alias or name, info.annotation, info.is_required())
        for name, info in model.model_fields.items()
    )


def check_object(
    value: Any,
    fields: tuple[Field, ...],
    where: str,
    out: list[str],
    not_null: frozenset[str] = frozenset(),
) -> None:
    if not isinstance(value, dict):
        out.append(f"{where}: expected an object, got {type(value).__name__}")
        return
    known = {f.wire: f for f in fields}
    for key in value:
        if key not in known:
            out.append(f"{where}.{key}: unknown field")
    for field in fields:
        if field.wire not in value:
            if field.required:
                out.append(f"{where}.{field.wire}: missing required field")
            continue
        if field.wire in not_null and value[field.wire] is None:
            out.append(f"{where}.{field.wire}: null is not accepted here")
            continue
        check_value(value[field.wire], field.annotation, f"{where}.{field.wire}", out)


# --- requests and responses -------------------------------------------------------------


def split(path: str) -> tuple[str, str]:
    """`/api/v1/subscribers/external?externalId=7` -> ("subscribers/external", "externalId=7")."""
    path, _, query = path.partition("?")
    return path.removeprefix(API_PREFIX), query


def check_request(method: str, path: str, query: str, body: Any) -> list[str]:
    """Every way a request breaks the SDK's contract; [] when it conforms."""
    endpoint = endpoint_for(method, path)
    if endpoint is None:
        return [f"{method} /api/v1/{path}: no such endpoint in the SDK"]
    where = f"{method} {endpoint.template}"
    out: list[str] = []
    params = dict(parse_qsl(query, keep_blank_values=True))
    check_object(params, endpoint.query, f"{where} query", out)
    if endpoint.body is None:
        if body not in (None, b"", ""):
            out.append(f"{where}: the SDK sends no body here")
        return out
    if body is None:
        body = {}
    check_object(
        body,
        endpoint.body,
        f"{where} body",
        out,
        NOT_NULL.get((method, endpoint.template), frozenset()),
    )
    for name, (low, high) in LIST_LIMITS.get((method, endpoint.template), {}).items():
        items = body.get(name) if isinstance(body, dict) else None
        if isinstance(items, list) and not low <= len(items) <= high:
            out.append(f"{where} body.{name}: {len(items)} items, the API takes {low} to {high}")
    return out


def check_response(method: str, path: str, body: Any) -> list[str]:
    """Every way a success body breaks the SDK's response type (for the fake's answers)."""
    endpoint = endpoint_for(method, path)
    if endpoint is None:
        return [f"{method} /api/v1/{path}: no such endpoint in the SDK"]
    out: list[str] = []
    check_value(body, endpoint.returns, f"{method} {endpoint.template} answer", out)
    return out
