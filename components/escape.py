"""Show text from a stack file to a reviewer exactly, in a terminal or in Markdown.

A stack file is written by anyone who can open a pull request, and its values end up in review
comments and terminal output. Nothing in a value may change what the reviewer reads: control
characters, terminal escape sequences and invisible formatting characters (bidirectional
overrides, zero-width spaces) are shown as escapes, and Markdown code spans are fenced so that
no backtick or pipe in the value can end them or the table cell around them.
"""

from __future__ import annotations

import re
import unicodedata

ELLIPSIS = "…"
# Unicode categories that draw nothing or move the cursor: controls, formats (bidi overrides,
# zero-width characters), surrogates, private use, unassigned; line and paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_BACKTICKS = re.compile(r"`+")


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: object) -> str:
    """Return text with every control or invisible character written as an escape.

    Parameters
    ----------
    text
        Any value; it is converted with str().

    Returns
    -------
    str
        The text, with e.g. ESC as ``\\x1b``, a newline as ``\\n`` and U+202E as ``\\u202e``;
        printable characters (spaces included) are kept.
    """
    line = str(text)
    if line.isprintable():
        return line
    return "".join(
        _escape(char) if unicodedata.category(char) in _HIDDEN else char for char in line
    )


def one_line(text: object, limit: int) -> str:
    """Return text as one visible line, cut to `limit` characters with an ellipsis.

    Parameters
    ----------
    text
        Any value; it is converted with str().
    limit
        The longest result.

    Returns
    -------
    str
        The text stripped of surrounding whitespace, escaped by `visible`, and shortened.
    """
    line = visible(str(text).strip())
    return line if len(line) <= limit else line[: limit - 1] + ELLIPSIS


def code_span(text: object, limit: int) -> str:
    """Return text as a Markdown code span fit for a table cell.

    The fence is one backtick longer than the longest run of backticks in the text, padded
    with spaces when the text starts or ends with a backtick or space (CommonMark strips one),
    and every `|` is escaped so that a GitHub table keeps its cells.

    Parameters
    ----------
    text
        Any value; shown by `one_line`.
    limit
        The longest text shown (before fencing).

    Returns
    -------
    str
        The code span, or "" for empty text.
    """
    line = one_line(text, limit)
    if not line:
        return ""
    longest = max((len(run) for run in _BACKTICKS.findall(line)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if line[0] in "` " or line[-1] in "` " else ""
    return f"{fence}{pad}{line}{pad}{fence}".replace("|", "\\|")
