"""The subset of Batch's OData `$filter` the double evaluates on lists of jobs and tasks.

Comparisons ``<property> eq|ne <literal>`` on ``id``, ``state``, ``executionInfo/result`` and
``executionInfo/exitCode``, joined by ``and`` / ``or`` with parentheses; string literals in
single quotes compare ignoring case (the service spells enums in any case). Anything else is
the service's 400 InvalidQueryParameterValue.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .service import BatchError

Predicate = Callable[[dict[str, Any]], bool]

_TOKEN = re.compile(r"\s*(?:(\()|(\))|'((?:[^']|'')*)'|(-?\d+)|([A-Za-z][\w/]*))")
PROPERTIES = frozenset({"id", "state", "executionInfo/result", "executionInfo/exitCode"})


def _invalid(text: str) -> BatchError:
    return BatchError(
        400,
        "InvalidQueryParameterValue",
        "Value for one of the query parameters specified in the request URI is invalid.",
        {"QueryParameterName": "$filter", "QueryParameterValue": text},
    )


def _tokens(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    position = 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if match is None:
            raise _invalid(text)
        position = match.end()
        opening, closing, string, number, word = match.groups()
        if opening:
            tokens.append(("(", None))
        elif closing:
            tokens.append((")", None))
        elif string is not None:
            tokens.append(("literal", string.replace("''", "'")))
        elif number is not None:
            tokens.append(("literal", int(number)))
        else:
            tokens.append(("word", word))
    return tokens


def _value(body: dict[str, Any], path: str) -> Any:
    value: Any = body
    for part in path.split("/"):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _equal(found: Any, literal: Any) -> bool:
    if isinstance(literal, str):
        return isinstance(found, str) and found.lower() == literal.lower()
    return found == literal


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.index = 0

    def _peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _next(self) -> tuple[str, Any]:
        token = self._peek()
        if token is None:
            raise _invalid(self.text)
        self.index += 1
        return token

    def _keyword(self, *words: str) -> str | None:
        token = self._peek()
        if token and token[0] == "word" and token[1].lower() in words:
            self.index += 1
            return str(token[1]).lower()
        return None

    def parse(self) -> Predicate:
        predicate = self._or()
        if self._peek() is not None:
            raise _invalid(self.text)
        return predicate

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._keyword("or"):
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda b: any(p(b) for p in parts))

    def _and(self) -> Predicate:
        parts = [self._term()]
        while self._keyword("and"):
            parts.append(self._term())
        return parts[0] if len(parts) == 1 else (lambda b: all(p(b) for p in parts))

    def _term(self) -> Predicate:
        kind, value = self._next()
        if kind == "(":
            inner = self._or()
            if self._next()[0] != ")":
                raise _invalid(self.text)
            return inner
        if kind != "word" or value not in PROPERTIES:
            raise _invalid(self.text)
        operator = self._keyword("eq", "ne")
        literal_kind, literal = self._next()
        if operator is None or literal_kind != "literal":
            raise _invalid(self.text)
        path = str(value)
        if operator == "eq":
            return lambda body: _equal(_value(body, path), literal)
        return lambda body: not _equal(_value(body, path), literal)


def parse_filter(text: str | None) -> Predicate | None:
    """Compile a `$filter` value into a predicate on REST bodies.

    Parameters
    ----------
    text : str or None
        The $filter query value.

    Returns
    -------
    Predicate or None
        True for the bodies the filter keeps; None when there is no filter.

    Raises
    ------
    BatchError
        400 InvalidQueryParameterValue for anything outside the supported subset.
    """
    if not text or not text.strip():
        return None
    return _Parser(text).parse()
