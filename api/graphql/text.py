"""Text from clients, checked at the edge, before any resolver reads it.

Every string a client sends (arguments, fields of input objects at any depth, list items,
ids, strings inside JSON) is refused when it holds a NUL, a lone surrogate, a control
character where one makes no sense, or is longer than its field allows. PostgreSQL cannot
store a NUL and no database can store a lone surrogate: caught here, a bad string is an
answer naming its field, never an "Unexpected error" or a half-written import.

- Single-line text (names, emails, URLs, ids, credentials): no control character at all.
- Multi-line text (notes, descriptions, JSON values): tab, line feed and carriage return
  are allowed, other control characters are not.
- Lengths come from the model column a field is stored in (``text_rules(Model)``), else the
  caps below.

``checked`` adds ``TextCheck`` to every field of a type that takes text. A mutation answers
its payload with one error ``INVALID_INPUT`` naming the field as the input does (camelCase,
``contacts[3].email``; fields of the argument called ``input`` without the ``input.``
prefix, as every other error of these payloads); any other field raises a GraphQL error
with ``extensions.code`` ``BAD_USER_INPUT`` and ``extensions.field``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.scalars import JSON
from strawberry.types.base import StrawberryList, StrawberryOptional
from strawberry.types.field import StrawberryField
from strawberry.types.unset import UNSET
from tortoise.fields import CharField, TextField
from tortoise.models import Model

from api.graphql.permissions import PublicError
from models.text import NUL, SURROGATE, text_fault


@dataclass(frozen=True)
class Rule:
    max_length: int
    multiline: bool = False


SINGLE_LINE = Rule(255)  # text with no column of its own: credentials, types, …
MULTI_LINE = Rule(65_535, multiline=True)  # TEXT columns (notes, descriptions), JSON values
ID = Rule(200)  # a global id is about 60 characters
SEARCH = Rule(200)
CURSOR = Rule(4_096)  # a cursor holds a sort value (a name: up to 255 escaped characters)

# Arguments that mean the same wherever they appear.
_ARGUMENTS: dict[str, Rule] = {"after": CURSOR}
_RULES: dict[type, dict[str, Rule]] = {}
_ALLOWED_IN_MULTI_LINE = frozenset("\t\n\r")

T = TypeVar("T")


def text_rules(model: type[Model] | None = None, /, **rules: Rule) -> Callable[[T], T]:
    """Register the rules of an input type's text fields: those of ``model``'s columns of
    the same name (a CharField's max_length; a TextField is multi-line), then ``rules``."""

    def register(cls: T) -> T:
        found: dict[str, Rule] = {}
        if model is not None:
            for name, column in model._meta.fields_map.items():
                if isinstance(column, CharField):
                    found[name] = Rule(column.max_length)
                elif isinstance(column, TextField):
                    found[name] = MULTI_LINE
        found.update(rules)
        _RULES[cls] = found  # type: ignore[index]
        return cls

    return register


def _rule_of(cls: type, name: str) -> Rule | None:
    for klass in cls.__mro__:  # filters inherit their base's rules
        if name in _RULES.get(klass, {}):
            return _RULES[klass][name]
    return None


def problem(value: str, rule: Rule) -> str | None:
    """What is wrong with ``value`` under ``rule`` (never quoting it), or None."""
    fault = text_fault(value)
    if fault == NUL:
        return "contains a NUL character"
    if fault == SURROGATE:
        return "is not valid Unicode (a lone surrogate)"
    if len(value) > rule.max_length:
        return f"is longer than {rule.max_length} characters"
    for char in value:
        if unicodedata.category(char) == "Cc" and not (
            rule.multiline and char in _ALLOWED_IN_MULTI_LINE
        ):
            return f"contains a control character (U+{ord(char):04X})"
    return None


@dataclass(frozen=True)
class BadText:
    field: str
    message: str


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _walk(value: Any, type_: Any, path: str, rule: Rule | None, names: Any) -> Iterator[BadText]:
    """Every bad string in ``value`` (of strawberry type ``type_``), first to last."""
    if value is None or value is UNSET:
        return
    while isinstance(type_, StrawberryOptional):
        type_ = type_.of_type
    if isinstance(type_, StrawberryList):
        for index, item in enumerate(value):
            yield from _walk(item, type_.of_type, f"{path}[{index}]", rule, names)
        return
    if type_ is JSON:
        yield from _json(value, path, rule or MULTI_LINE)
        return
    definition = _input_definition(type(value))
    if definition is not None:
        for field in definition.fields:
            yield from _walk(
                getattr(value, field.python_name, None),
                field.type,
                _join(path, names.get_graphql_name(field)),
                _rule_of(type(value), field.python_name),
                names,
            )
        return
    if isinstance(value, str):
        chosen = rule or (ID if type_ is strawberry.ID else SINGLE_LINE)
        if (found := problem(value, chosen)) is not None:
            yield BadText(path, f"{path} {found}")


def _json(value: Any, path: str, rule: Rule) -> Iterator[BadText]:
    if isinstance(value, str):
        if (found := problem(value, rule)) is not None:
            yield BadText(path, f"{path} {found}")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _json(key, path, SINGLE_LINE)
            yield from _json(item, f"{path}.{key}" if isinstance(key, str) else path, rule)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json(item, f"{path}[{index}]", rule)


def first_bad(field: StrawberryField, kwargs: Mapping[str, Any], names: Any) -> BadText | None:
    """The first bad string among a field's converted arguments, or None."""
    for argument in field.arguments:
        name = names.from_argument(argument)
        # The input object's fields are named as every error of its payload names them.
        path = "" if name == "input" else name
        value = kwargs.get(argument.python_name)
        for bad in _walk(value, argument.type, path, _ARGUMENTS.get(name), names):
            return bad
    return None


def takes_text(type_: Any, seen: frozenset[type] = frozenset()) -> bool:
    """Whether a GraphQL argument of strawberry type ``type_`` can carry a string."""
    while isinstance(type_, (StrawberryOptional, StrawberryList)):
        type_ = type_.of_type
    if type_ in (str, strawberry.ID, JSON):
        return True
    definition = _input_definition(type_)
    if definition is None or type_ in seen:
        return False
    return any(takes_text(field.type, seen | {type_}) for field in definition.fields)


def _input_definition(type_: Any) -> Any:
    """The strawberry definition of an input type, else None (enums have one too)."""
    definition = getattr(type_, "__strawberry_definition__", None)
    return definition if getattr(definition, "is_input", False) else None


def _field_named(type_: Any, name: str) -> Any:
    definition = getattr(type_, "__strawberry_definition__", None)
    fields = definition.fields if definition is not None else ()
    return next((f for f in fields if f.python_name == name), None)


def _payload_error(field: StrawberryField) -> Callable[[BadText], Any] | None:
    """How the field answers bad text as data: its payload with one INVALID_INPUT error
    (None for a field whose type has no ``errors``)."""
    payload: Any = field.type
    errors = _field_named(payload, "errors")
    if errors is None or not isinstance(errors.type, StrawberryList):
        return None
    error_type: Any = errors.type.of_type
    # A KeyError here, at schema build, names an error code enum that lacks INVALID_INPUT.
    invalid = _field_named(error_type, "code").type.wrapped_cls["INVALID_INPUT"]

    def answer(bad: BadText) -> Any:
        return payload(errors=[error_type(code=invalid, message=bad.message, field=bad.field)])

    return answer


class TextCheck(FieldExtension):
    """Refuses a field's bad text arguments before its resolver runs."""

    field: StrawberryField
    answer: Callable[[BadText], Any] | None

    def apply(self, field: StrawberryField) -> None:
        # At schema build: a payload whose error codes lack INVALID_INPUT fails it here.
        self.field = field
        self.answer = _payload_error(field)

    def _refusal(self, info: strawberry.Info[Any, Any], kwargs: Mapping[str, Any]) -> Any:
        bad = first_bad(self.field, kwargs, info.schema.config.name_converter)
        if bad is None:
            return None
        if self.answer is None:
            raise PublicError(bad.message, "BAD_USER_INPUT", field=bad.field)
        return self.answer(bad)

    def resolve(
        self, next_: Callable[..., Any], source: Any, info: strawberry.Info[Any, Any], **kwargs: Any
    ) -> Any:
        refused = self._refusal(info, kwargs)
        return next_(source, info, **kwargs) if refused is None else refused

    async def resolve_async(
        self, next_: Callable[..., Any], source: Any, info: strawberry.Info[Any, Any], **kwargs: Any
    ) -> Any:
        refused = self._refusal(info, kwargs)
        return await next_(source, info, **kwargs) if refused is None else refused


def checked(cls: T) -> T:
    """Add ``TextCheck`` to every field of a strawberry type that takes text (fields
    without text arguments pay nothing)."""
    for field in cls.__strawberry_definition__.fields:  # type: ignore[attr-defined]
        if any(isinstance(e, TextCheck) for e in field.extensions):
            continue
        if any(takes_text(argument.type) for argument in field.arguments):
            field.extensions.append(TextCheck())
    return cls
