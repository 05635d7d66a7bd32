"""Read a stack file's YAML the way the Pulumi CLI does, in bounded time.

The CLI reads stack files with Go's YAML library (YAML 1.2 rules: `yes`, `no`, `on`, `off` and
`12:30` stay text, `06` and `3.10` are numbers, duplicate keys are an error) and hands the
program JSON, so the program never sees a scalar's text. This module builds the document from
ruamel.yaml's parse events (no recursion, so nesting cannot exhaust the stack), resolves plain
scalars as the CLI does, and reports, with its key path:

- a key given twice in one mapping (the CLI refuses the file);
- a plain scalar in the project's settings whose text would not survive the trip through JSON
  (`3.10` arrives as 3.1, `06` as 6, `True` as true): review would show one thing and `pulumi
  up` run another, so it must be quoted (or written as the program will see it);
- nesting deeper than `MAX_DEPTH`, and aliases that expand the document beyond
  `MAX_EXPANSION` (an "alias bomb"): the file is refused at once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from ruamel.yaml.scanner import Scanner

from batchtasks.config.model import ConfigProblem, shown
from batchtasks.config.shape import child, item

# Deepest nesting of mappings and sequences; a stack file needs about a dozen levels.
MAX_DEPTH = 64
# Aliases may expand the document to this many nodes, plus EXPANSION_FACTOR per node written.
MAX_EXPANSION = 10_000
EXPANSION_FACTOR = 10

_TAG = "tag:yaml.org,2002:"
_NULLS = {"", "~", "null", "Null", "NULL"}
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_SPECIAL_FLOATS = {
    **{text: math.inf for text in (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF")},
    **{text: -math.inf for text in ("-.inf", "-.Inf", "-.INF")},
    **{text: math.nan for text in (".nan", ".NaN", ".NAN")},
}
# Go YAML's float syntax, checked after underscores are removed.
_GO_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_DIGITS = {2: "01", 8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}
_INT64 = 2**63
_UINT64 = 2**64


class YamlFileError(Exception):
    """The file cannot be read as one YAML document at all; `problem` says where and why."""

    def __init__(self, problem: ConfigProblem) -> None:
        self.problem = problem
        super().__init__(str(problem))


def _go_integer(text: str) -> int | None:
    """Return the integer Go's strconv.ParseInt/ParseUint (base 0) reads, or None."""
    sign = -1 if text.startswith("-") else 1
    digits = text[1:] if text[:1] in "+-" else text
    base = 10
    prefix = digits[:2].lower()
    if prefix in ("0x", "0o", "0b"):
        base, digits = {"0x": 16, "0o": 8, "0b": 2}[prefix], digits[2:]
    elif len(digits) > 1 and digits.startswith("0"):
        base, digits = 8, digits[1:]
    if not digits or any(char not in _DIGITS[base] for char in digits):
        return None
    value = sign * int(digits, base)
    if -_INT64 <= value < _UINT64:
        return value
    return None


def resolve_plain(text: str) -> Any:
    """Return what the Pulumi CLI's YAML reader makes of a plain (unquoted) scalar.

    Parameters
    ----------
    text
        The scalar as written.

    Returns
    -------
    Any
        None, a bool, an int, a float, or the text itself.
    """
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if text in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text]
    if text[0] in "+-.0123456789":
        plain = text.replace("_", "")
        number = _go_integer(plain)
        if number is not None:
            return number
        if _GO_FLOAT.fullmatch(plain):
            return float(plain)
    return text


def as_program_sees(value: Any) -> Any:
    """Return a resolved scalar as the program gets it through the CLI's JSON.

    Go writes a whole float below 1e21 without a fraction (1.0 -> 1), which JSON readers turn
    into an integer.
    """
    if (
        isinstance(value, float)
        and math.isfinite(value)
        and value.is_integer()
        and abs(value) < 1e21
    ):
        return int(value)
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def scalar_problem(text: str, value: Any) -> str | None:
    """Say why a plain scalar's text would not reach the program as written.

    Parameters
    ----------
    text
        The scalar as written.
    value
        What it resolves to (`resolve_plain`).

    Returns
    -------
    str | None
        None when the program sees the same text; otherwise what it sees and the advice.
    """
    if value is None or isinstance(value, str):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return (
            f"is read as the number {text}, which the Pulumi CLI cannot pass to the "
            f"program (JSON has no such number): quote it ('{text}')"
        )
    seen = _text(as_program_sees(value))
    if seen == text:
        return None
    kind = "boolean" if isinstance(value, bool) else "number"
    return (
        f"is read as the {kind} {seen} (YAML 1.2, as the Pulumi CLI reads it), so the "
        f"program would see {seen}: quote it ('{text}') to keep the text, or write {seen}"
    )


class _Merge:
    """The plain key `<<`: merge another mapping's keys into this one."""

    def __repr__(self) -> str:
        return "<<"


class _BadKey:
    """A key already reported as not text; unique, so it never collides with another."""

    def __repr__(self) -> str:
        return "<key>"


_MERGE = _Merge()


@dataclass
class _Frame:
    """A mapping or sequence being built."""

    value: Any
    path: str
    anchor: str | None
    checked: bool
    # The document's root and its `config:` block name their children by the bare key.
    names_bare: bool = False
    size: int = 1
    key: Any = None
    key_line: int = 0
    has_key: bool = False
    lines: dict[Any, int] = field(default_factory=dict)
    merges: list[Any] = field(default_factory=list)


@dataclass
class _Reader:
    """The state of one read: open containers, anchors, counts and problems."""

    checked: Callable[[str], bool]
    problems: list[ConfigProblem] = field(default_factory=list)
    stack: list[_Frame] = field(default_factory=list)
    anchors: dict[str, tuple[Any, int]] = field(default_factory=dict)
    nodes: int = 0
    expanded: int = 0
    documents: int = 0
    result: Any = None

    def fail(self, path: str, message: str) -> None:
        raise YamlFileError(ConfigProblem(path or "config", message))

    def _expecting_key(self) -> bool:
        return (
            bool(self.stack)
            and isinstance(self.stack[-1].value, dict)
            and not self.stack[-1].has_key
        )

    def _path(self) -> str:
        """Return the key path of the node about to be added."""
        if not self.stack:
            return ""
        parent = self.stack[-1]
        if isinstance(parent.value, list):
            return item(parent.path, len(parent.value))
        if not parent.has_key:
            return parent.path
        if parent.names_bare:
            return str(parent.key)
        return child(parent.path, parent.key)

    def _setting_level(self) -> bool:
        """Whether the node about to be added is a setting (a value of the `config:` block)."""
        return len(self.stack) == 2 and self.stack[1].names_bare and self.stack[1].has_key

    def grow(self, size: int, path: str) -> None:
        self.nodes += 1
        self.expanded += size
        if self.expanded > MAX_EXPANSION + EXPANSION_FACTOR * self.nodes:
            self.fail(
                path,
                f"makes aliases expand the file beyond {self.expanded} values; at "
                f"most {MAX_EXPANSION} plus {EXPANSION_FACTOR} per value written "
                "are read",
            )

    def add(self, value: Any, size: int, mark: Any, merge: bool = False) -> None:
        """Put a finished node into its parent (as a key, a value or an item)."""
        if not self.stack:
            self.result = value
            return
        parent = self.stack[-1]
        parent.size += size
        if isinstance(parent.value, list):
            parent.value.append(value)
            return
        if not parent.has_key:
            if merge:
                value = _MERGE
            elif not isinstance(value, str):
                self.problems.append(
                    ConfigProblem(
                        parent.path or "config",
                        f"has a key at line {mark.line + 1} that is not "
                        f"text ({shown(value)}): quote it",
                    )
                )
                value = _BadKey()
            parent.key, parent.has_key, parent.key_line = value, True, mark.line + 1
            return
        key, parent.has_key = parent.key, False
        if key is _MERGE:
            parent.merges.append(value)
            return
        if isinstance(key, _BadKey):
            return
        if key in parent.lines:
            path = str(key) if parent.names_bare else child(parent.path, key)
            self.problems.append(
                ConfigProblem(
                    path,
                    f"is given twice in one mapping (lines {parent.lines[key]} and "
                    f"{parent.key_line}); the Pulumi CLI refuses duplicate keys",
                )
            )
            return
        parent.lines[key] = parent.key_line
        parent.value[key] = value

    def scalar(self, event: ScalarEvent) -> None:
        path = self._path()
        self.grow(1, path)
        text = event.value
        as_key = self._expecting_key()
        value: Any
        if event.style is None and event.implicit[0] and event.tag is None:
            value = resolve_plain(text)
            if as_key and text == "<<":
                self.add(text, 1, event.start_mark, merge=True)
                return
            if self._setting_level() and value is not None:
                # The CLI keeps a setting's own scalar as its text (`pulumi config get`).
                value = text
            elif not as_key and self.stack and self.stack[-1].checked:
                problem = scalar_problem(text, value)
                if problem:
                    self.problems.append(ConfigProblem(path, problem, text))
        else:
            value = self._tagged(text, event.tag, path)
        if event.anchor:
            self.anchors[event.anchor] = (value, 1)
        self.add(value, 1, event.start_mark)

    def _tagged(self, text: str, tag: str | None, path: str) -> Any:
        if tag is None or tag in ("!", f"{_TAG}str"):
            return text
        name = tag.removeprefix(_TAG)
        kinds: dict[str, Any] = {
            "int": int,
            "float": (int, float),
            "bool": bool,
            "null": type(None),
        }
        if tag.startswith(_TAG) and name in kinds:
            value = resolve_plain(text) if text else None
            if isinstance(value, kinds[name]) and (name == "bool" or not isinstance(value, bool)):
                return float(value) if name == "float" else value
            self.fail(path, f"{text!r} is not a valid !!{name}")
        self.fail(
            path, f"uses the tag {tag}, which a stack file cannot hold (quote the value instead)"
        )
        return None

    def start(self, event: MappingStartEvent | SequenceStartEvent) -> None:
        path = self._path()
        if len(self.stack) >= MAX_DEPTH:
            self.fail(path, f"is nested more than {MAX_DEPTH} levels deep")
        mapping = isinstance(event, MappingStartEvent)
        tag = event.tag
        if tag is not None and tag not in ("!", f"{_TAG}{'map' if mapping else 'seq'}"):
            self.fail(path, f"uses the tag {tag}, which a stack file cannot hold")
        self.grow(1, path)
        root = not self.stack
        config = len(self.stack) == 1 and self.stack[0].has_key and self.stack[0].key == "config"
        if self._setting_level():
            checked = self.checked(path)
        else:
            checked = bool(self.stack) and self.stack[-1].checked
        self.stack.append(
            _Frame(
                {} if mapping else [],
                "config" if config else path,
                event.anchor,
                checked,
                names_bare=root or config,
            )
        )

    def end(self, event: Any) -> None:
        frame = self.stack.pop()
        value = self._merged(frame) if frame.merges else frame.value
        if frame.anchor:
            self.anchors[frame.anchor] = (value, frame.size)
        self.add(value, frame.size, event.start_mark)

    def _merged(self, frame: _Frame) -> dict[Any, Any]:
        """Apply `<<` merge keys as the CLI does: keys written in the mapping win."""
        merged = dict(frame.value)
        sources: list[Any] = []
        for source in frame.merges:
            sources.extend(source if isinstance(source, list) else [source])
        for source in sources:
            if not isinstance(source, dict):
                self.fail(frame.path, "merges (<<) something that is not a mapping")
            for key, value in source.items():
                merged.setdefault(key, value)
        return merged

    def alias(self, event: AliasEvent) -> None:
        path = self._path()
        if event.anchor not in self.anchors:
            self.fail(path, f"uses the alias *{event.anchor}, which names no anchor before it")
        value, size = self.anchors[event.anchor]
        self.grow(size, path)
        self.add(value, size, event.start_mark)


class _BoundedScanner(Scanner):
    """ruamel.yaml's scanner, refusing deep flow nesting before it looks ahead.

    Inside `[` and `{` the scanner keeps every open level as a possible key and scans on to
    the closing brackets before it hands out a token: hundreds of levels cost seconds.
    """

    def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:
        if len(self.flow_context) >= MAX_DEPTH:
            mark = self.reader.get_mark()
            raise YamlFileError(
                ConfigProblem(
                    "config",
                    f"nests [ and {{ more than {MAX_DEPTH} levels deep (line "
                    f"{mark.line + 1}, column {mark.column + 1})",
                )
            )
        super().fetch_flow_collection_start(TokenClass, to_push)


def read_yaml(text: str, checked: Callable[[str], bool]) -> tuple[Any, list[ConfigProblem]]:
    """Read one YAML document as the Pulumi CLI does.

    Parameters
    ----------
    text
        The file's text.
    checked
        Given a setting's key (a key of the `config:` block), whether the plain scalars under
        it must keep their text (the project's own settings; other namespaces are left alone).

    Returns
    -------
    tuple[Any, list[ConfigProblem]]
        The document (None when empty) and the problems found: duplicate keys, keys that are
        not text, scalars whose text would change. The document is still usable with them.

    Raises
    ------
    YamlFileError
        When the text is not YAML, holds more than one document, nests too deep or expands
        too far through aliases.
    """
    reader = _Reader(checked)
    try:
        yaml = YAML(typ="safe", pure=True)
        yaml.Scanner = _BoundedScanner
        for event in yaml.parse(text):
            if isinstance(event, ScalarEvent):
                reader.scalar(event)
            elif isinstance(event, MappingStartEvent | SequenceStartEvent):
                reader.start(event)
            elif isinstance(event, MappingEndEvent | SequenceEndEvent):
                reader.end(event)
            elif isinstance(event, AliasEvent):
                reader.alias(event)
            elif isinstance(event, DocumentStartEvent):
                reader.documents += 1
                if reader.documents > 1:
                    reader.fail(
                        "config",
                        f"starts a second YAML document at line "
                        f"{event.start_mark.line + 1}; a stack file is one "
                        "document",
                    )
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = error.problem or error.context or "cannot be parsed"
        raise YamlFileError(
            ConfigProblem("config", f"is not valid YAML{where}: {reason}")
        ) from None
    except YAMLError as error:
        raise YamlFileError(ConfigProblem("config", f"is not valid YAML: {error}")) from None
    return reader.result, reader.problems
