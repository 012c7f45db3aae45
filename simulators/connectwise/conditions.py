"""The ConnectWise ``conditions`` language: tokenizer, recursive-descent parser, compiler.

Grammar (keywords case-insensitive; AND binds tighter than OR, as in SQL)::

    expression := term ("or" term)*
    term       := factor ("and" factor)*
    factor     := "(" expression ")" | comparison
    comparison := PATH operator value
                | PATH ["not"] ("contains" | "like") STRING
                | PATH ["not"] "in" "(" value ("," value)* ")"
    operator   := "=" | "!=" | "<" | "<=" | ">" | ">="
    value      := STRING | NUMBER | "true" | "false" | "null" | "[" DATETIME "]"

Strings take double or single quotes with backslash escapes; numbers may be negative and have a
decimal point. `parse` builds a small tree; `compile_conditions` checks it against a resource
(unknown fields and mistyped values are 400s, with ConnectWise's own wording where we know it)
and turns it into one predicate over stored rows. Evaluation follows SQL Server, which is what
ConnectWise runs underneath: strings compare case-insensitively, and a comparison with a missing
(NULL) value is false unless it is ``= null`` / ``!= null``. A custom field's ``value`` may hold
any scalar; a literal only matches stored values of its own kind (`_scalar_test`).
"""

from __future__ import annotations

import enum
import functools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulators.connectwise.errors import ConditionError
from simulators.connectwise.paths import resolve
from simulators.connectwise.schema import Kind, Resource, Row
from simulators.connectwise.timestamps import canonical_datetime

Predicate = Callable[[Row], bool]

# ConnectWise's own explanation, appended to value errors (quoted from its 400 responses).
VALUE_RULES = (
    "String values should be enclosed with double or single quotes; DateTime values should be "
    "enclosed in square brackets; numbers should consist of only digits, and optionally a "
    "decimal point and a negation sign; boolean values should be indicated with the keywords "
    "true or false; null values should be indicated by the keyword null."
)


@dataclass(frozen=True)
class DateTimeValue:
    """A bracketed datetime literal, kept in the canonical wire format."""

    text: str


Value = str | int | float | bool | None | DateTimeValue


@dataclass(frozen=True)
class Comparison:
    path: str
    operator: str  # "=", "!=", "<", "<=", ">", ">=", "contains", "like", "in"
    value: Value | tuple[Value, ...]
    negated: bool = False  # "not contains", "not like", "not in"


@dataclass(frozen=True)
class Junction:
    operator: str  # "and" | "or"
    operands: tuple[Node, ...]


Node = Comparison | Junction


# --------------------------------------------------------------------------------- tokenizer


class TokenKind(enum.Enum):
    WORD = "word"  # field paths and keywords
    STRING = "string"
    NUMBER = "number"
    DATETIME = "datetime"
    OPERATOR = "operator"
    OPEN = "("
    CLOSE = ")"
    COMMA = ","
    END = "end"


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str
    value: Value
    position: int


_DIGITS = frozenset("0123456789")
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_/") | _DIGITS
_OPERATORS = ("!=", "<=", ">=", "=", "<", ">")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def tokenize(text: str) -> list[Token]:
    """Split a conditions string into tokens; raises ConditionError on malformed literals."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "(),":
            tokens.append(Token(TokenKind(ch), ch, None, i))
            i += 1
        elif ch in "\"'":
            i = _read_string(text, i, tokens)
        elif ch == "[":
            end = text.find("]", i)
            if end < 0:
                raise ConditionError(
                    f"Unterminated datetime starting at position {i}. {VALUE_RULES}"
                )
            raw = text[i + 1 : end]
            try:
                value = DateTimeValue(canonical_datetime(raw))
            except ValueError:
                raise ConditionError(f"'{raw}' is not a valid datetime. {VALUE_RULES}") from None
            tokens.append(Token(TokenKind.DATETIME, text[i : end + 1], value, i))
            i = end + 1
        elif ch in _DIGITS or (ch == "-" and i + 1 < n and text[i + 1] in _DIGITS):
            i = _read_number(text, i, tokens)
        elif ch in "!<>=":
            op = next(o for o in (*_OPERATORS, "") if text.startswith(o, i))
            if not op:
                raise ConditionError(f"Unexpected '{ch}' at position {i}")
            tokens.append(Token(TokenKind.OPERATOR, op, None, i))
            i += len(op)
        elif ch in _WORD_CHARS:
            start = i
            while i < n and text[i] in _WORD_CHARS:
                i += 1
            tokens.append(Token(TokenKind.WORD, text[start:i], None, start))
        else:
            raise ConditionError(f"Unexpected '{ch}' at position {i}")
    tokens.append(Token(TokenKind.END, "", None, n))
    return tokens


def _read_string(text: str, start: int, tokens: list[Token]) -> int:
    quote = text[start]
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            chars.append(_ESCAPES.get(nxt, nxt))
            i += 2
        elif ch == quote:
            tokens.append(Token(TokenKind.STRING, text[start : i + 1], "".join(chars), start))
            return i + 1
        else:
            chars.append(ch)
            i += 1
    raise ConditionError(f"Unterminated string starting at position {start}. {VALUE_RULES}")


def _read_number(text: str, start: int, tokens: list[Token]) -> int:
    i = start + 1
    while i < len(text) and text[i] in _DIGITS:
        i += 1
    is_decimal = i + 1 < len(text) and text[i] == "." and text[i + 1] in _DIGITS
    if is_decimal:
        i += 1
        while i < len(text) and text[i] in _DIGITS:
            i += 1
    if i < len(text) and (text[i] in _WORD_CHARS or text[i] in "\"'[."):
        raise ConditionError(f"Malformed number at position {start}. {VALUE_RULES}")
    raw = text[start:i]
    try:
        value: Value = float(raw) if is_decimal else int(raw)
    except ValueError:  # more digits than Python converts (and than any SQL column holds)
        raise ConditionError(f"The number at position {start} is too long. {VALUE_RULES}") from None
    tokens.append(Token(TokenKind.NUMBER, raw, value, start))
    return i


# ------------------------------------------------------------------------------------ parser

_KEYWORD_VALUES: dict[str, Value] = {"true": True, "false": False, "null": None}
_TEXT_OPERATORS = ("contains", "like", "in")


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def keyword(self, *words: str) -> str | None:
        """Consume and return the next token if it is one of the keywords `words`."""
        token = self.peek()
        if token.kind is TokenKind.WORD and token.text.lower() in words:
            self.i += 1
            return token.text.lower()
        return None

    def expect(self, kind: TokenKind, what: str) -> Token:
        token = self.take()
        if token.kind is not kind:
            raise _unexpected(token, what)
        return token

    def parse(self) -> Node:
        node = self.expression()
        token = self.peek()
        if token.kind is not TokenKind.END:
            raise _unexpected(token, "'and', 'or' or the end of the conditions")
        return node

    def expression(self) -> Node:
        return self.junction("or", self.term)

    def term(self) -> Node:
        return self.junction("and", self.factor)

    def junction(self, word: str, operand: Callable[[], Node]) -> Node:
        operands = [operand()]
        while self.keyword(word):
            operands.append(operand())
        return operands[0] if len(operands) == 1 else Junction(word, tuple(operands))

    def factor(self) -> Node:
        if self.peek().kind is TokenKind.OPEN:
            self.take()
            node = self.expression()
            self.expect(TokenKind.CLOSE, "')'")
            return node
        return self.comparison()

    def comparison(self) -> Comparison:
        path = self.take()
        if path.kind is not TokenKind.WORD or path.text.lower() in _KEYWORD_VALUES:
            raise _unexpected(path, "a field name")
        negated = self.keyword("not") is not None
        word = self.keyword(*_TEXT_OPERATORS)
        if word == "in":
            return Comparison(path.text, "in", self.value_list(), negated)
        if word is not None:
            return Comparison(path.text, word, self.value(), negated)
        if negated:
            raise _unexpected(self.peek(), "'contains', 'like' or 'in' after 'not'")
        symbol = self.expect(TokenKind.OPERATOR, "a comparison operator")
        return Comparison(path.text, symbol.text, self.value())

    def value_list(self) -> tuple[Value, ...]:
        self.expect(TokenKind.OPEN, "'(' after 'in'")
        values = [self.value()]
        while self.peek().kind is TokenKind.COMMA:
            self.take()
            values.append(self.value())
        self.expect(TokenKind.CLOSE, "')' closing the 'in' list")
        return tuple(values)

    def value(self) -> Value:
        token = self.take()
        if token.kind in (TokenKind.STRING, TokenKind.NUMBER, TokenKind.DATETIME):
            return token.value
        if token.kind is TokenKind.WORD and token.text.lower() in _KEYWORD_VALUES:
            return _KEYWORD_VALUES[token.text.lower()]
        if token.kind is TokenKind.END:
            raise ConditionError(f"Expected a value at the end of the conditions. {VALUE_RULES}")
        raise ConditionError(f"Expected a value, not '{token.text}'. {VALUE_RULES}")


def _unexpected(token: Token, wanted: str) -> ConditionError:
    if token.kind is TokenKind.END:
        return ConditionError(f"Expected {wanted} at the end of the conditions")
    return ConditionError(f"Expected {wanted}, not '{token.text}' at position {token.position}")


def parse(text: str) -> Node:
    """Parse a conditions string into a tree; raises ConditionError on bad syntax."""
    return _Parser(text).parse()


# ---------------------------------------------------------------------------------- compiler


@dataclass(frozen=True)
class Condition:
    """A compiled conditions string: the row predicate and the fields it mentions."""

    test: Predicate
    fields: frozenset[str]


def compile_conditions(text: str, resource: Resource) -> Condition:
    """Parse `text` and bind it to `resource`; raises ConditionError (a 400) when invalid."""
    return compile_node(parse(text), resource)


def compile_node(node: Node, resource: Resource) -> Condition:
    """Bind an already parsed (perhaps rewritten) tree to `resource`; the SOAP API renames
    its field names to REST paths this way (`soap/queries.py`)."""
    fields: set[str] = set()
    return Condition(_compile(node, resource, fields), frozenset(fields))


def _compile(node: Node, resource: Resource, fields: set[str]) -> Predicate:
    if isinstance(node, Junction):
        parts = [_compile(n, resource, fields) for n in node.operands]
        combine = _both if node.operator == "and" else _either
        return functools.reduce(combine, parts)

    path = resolve(resource, node.path)
    fields.add(path.field.name)
    test = _value_test(node, path.leaf)
    get = path.get
    if path.many:  # a path through an array matches when any element matches
        return lambda row: any(test(v) for v in get(row))
    return lambda row: test(get(row))


def _both(a: Predicate, b: Predicate) -> Predicate:
    return lambda row: a(row) and b(row)


def _either(a: Predicate, b: Predicate) -> Predicate:
    return lambda row: a(row) or b(row)


_KIND_WORDS = {
    Kind.STRING: "string",
    Kind.INTEGER: "numeric",
    Kind.DECIMAL: "numeric",
    Kind.BOOLEAN: "boolean",
    Kind.DATETIME: "datetime",
}


def _value_word(value: Value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "numeric"
    if isinstance(value, DateTimeValue):
        return "datetime"
    return "string"


def _check_type(value: Value, leaf: Kind) -> Any:
    """Return `value` in the stored representation of `leaf`, or raise ConnectWise's error."""
    matches = {
        Kind.STRING: isinstance(value, str),
        Kind.INTEGER: isinstance(value, int | float) and not isinstance(value, bool),
        Kind.DECIMAL: isinstance(value, int | float) and not isinstance(value, bool),
        Kind.BOOLEAN: isinstance(value, bool),
        Kind.DATETIME: isinstance(value, DateTimeValue),
    }[leaf]
    if not matches:
        raise ConditionError(
            f"Expected a {_KIND_WORDS[leaf]} value, not a {_value_word(value)}. {VALUE_RULES}"
        )
    if isinstance(value, DateTimeValue):
        return value.text
    if isinstance(value, str):
        return value.casefold()
    return value


def _value_test(node: Comparison, leaf: Kind) -> Callable[[Any], bool]:
    """A test of one stored value against the comparison's literal."""
    op, literal = node.operator, node.value
    if op in ("=", "!=") and literal is None:
        return (lambda v: v is None) if op == "=" else (lambda v: v is not None)
    if leaf is Kind.SCALAR:
        return _scalar_test(node)
    if op in ("contains", "like") and leaf is not Kind.STRING:
        raise ConditionError(f"'{op}' can only be used with string fields, not '{node.path}'")

    fold = leaf is Kind.STRING  # SQL Server's default collation ignores case

    if op == "in":
        assert isinstance(literal, tuple)
        if None in literal:
            raise ConditionError(f"null cannot be used in an 'in' list. {VALUE_RULES}")
        options = frozenset(_check_type(v, leaf) for v in literal)
        if fold:
            return _negatable(lambda v: v.casefold() in options, node.negated)
        return _negatable(lambda v: v in options, node.negated)

    assert not isinstance(literal, tuple)
    if literal is None:
        raise ConditionError(f"null can only be compared with = or !=. {VALUE_RULES}")
    target = _check_type(literal, leaf)
    if op == "contains":
        return _negatable(lambda v: target in v.casefold(), node.negated)
    if op == "like":
        pattern = like_pattern(str(literal))
        return _negatable(lambda v: pattern.fullmatch(v) is not None, node.negated)
    if leaf is Kind.BOOLEAN and op not in ("=", "!="):
        raise ConditionError(f"'{op}' cannot be used with the boolean field '{node.path}'")
    compare = _COMPARISONS[op]
    if fold:
        return lambda v: v is not None and compare(v.casefold(), target)
    return lambda v: v is not None and compare(v, target)


def _scalar_key(value: Any) -> tuple[str, Any] | None:
    """A custom field value (or literal) as (family, comparable): strings ignore case, and a
    date is its canonical string, so only values of one family are ever compared."""
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, int | float):
        return ("numeric", value)
    if isinstance(value, DateTimeValue):
        return ("string", value.text.casefold())
    if isinstance(value, str):
        return ("string", value.casefold())
    return None


def _scalar_test(node: Comparison) -> Callable[[Any], bool]:
    """A test of a value that may hold any scalar (a custom field's `value`).

    A literal of another kind than the stored value never matches (no error: the same field
    holds text on one record and a number on another).
    """
    op, literal = node.operator, node.value
    if op == "in":
        assert isinstance(literal, tuple)
        if None in literal:
            raise ConditionError(f"null cannot be used in an 'in' list. {VALUE_RULES}")
        options = frozenset(_scalar_key(v) for v in literal)
        return _negatable(lambda v: _scalar_key(v) in options, node.negated)
    assert not isinstance(literal, tuple)
    if literal is None:
        raise ConditionError(f"null can only be compared with = or !=. {VALUE_RULES}")
    if op in ("contains", "like"):
        if not isinstance(literal, str):
            raise ConditionError(f"'{op}' needs a string value. {VALUE_RULES}")
        if op == "contains":
            folded = literal.casefold()
            return _negatable(lambda v: isinstance(v, str) and folded in v.casefold(), node.negated)
        pattern = like_pattern(literal)
        return _negatable(
            lambda v: isinstance(v, str) and pattern.fullmatch(v) is not None, node.negated
        )
    target = _scalar_key(literal)
    assert target is not None
    if target[0] == "boolean" and op not in ("=", "!="):
        raise ConditionError(f"'{op}' cannot be used with a boolean value")
    compare = _COMPARISONS[op]

    def test(v: Any) -> bool:
        key = _scalar_key(v)
        return key is not None and key[0] == target[0] and compare(key[1], target[1])

    return test


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _negatable(test: Callable[[Any], bool], negated: bool) -> Callable[[Any], bool]:
    # NULL never matches, negated or not (SQL three-valued logic).
    if negated:
        return lambda v: v is not None and not test(v)
    return lambda v: v is not None and test(v)


def like_pattern(pattern: str) -> re.Pattern[str]:
    """Translate a SQL LIKE pattern (``%`` or ``*`` any run, ``_`` one character)."""
    parts = []
    for ch in pattern:
        if ch in "%*":
            parts.append(".*")
        elif ch == "_":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)
