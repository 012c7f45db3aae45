"""What a PSA requires before it takes a new record, checked against a ``PsaChange``.

Shared by the providers' writes: each names its required local columns and how to word them
(its mapping's ``REQUIRED_FOR_CREATE``/``REQUIRED_WORDS``); this module says which a change
lacks, in the words' order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from models.enums import ReferenceKind
from sync.providers.base import PsaChange


class _Code(Protocol):
    @property
    def kind(self) -> ReferenceKind: ...


class _Ref(Protocol):
    @property
    def name(self) -> str: ...


class Table(Protocol):
    """A provider's record map, as far as requirements look at it."""

    @property
    def codes(self) -> Sequence[_Code]: ...

    @property
    def refs(self) -> Sequence[_Ref]: ...


def filled(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return value is not None


def present(table: Table, column: str, change: PsaChange, parent_column: str) -> bool:
    """Whether ``change`` gives the local ``column``: the owner, a reference value, a
    relation or a scalar value."""
    if column == parent_column:
        return change.parent_psa_id is not None
    for code in table.codes:
        if column == f"{code.kind.value}_id":
            return bool(change.codes.get(code.kind))
    for ref in table.refs:
        if column == f"{ref.name}_id":
            return change.refs.get(ref.name) is not None
    return filled(change.values.get(column))


def missing(
    required: Iterable[str], given: Callable[[str], bool], words: Mapping[str, str]
) -> list[str]:
    """The required columns not ``given``, worded by ``words`` and in its order (others last,
    their column name in words)."""
    order = list(words)
    lacking = sorted(
        (c for c in required if not given(c)),
        key=lambda c: order.index(c) if c in order else len(order),
    )
    return [words.get(c, c.replace("_", " ")) for c in lacking]
