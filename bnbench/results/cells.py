"""Text cells that are safe in the files a reader opens: spreadsheets and markdown.

Arm names, grid values and run names come from user files and end up in runs.csv,
summary.csv, histories.csv, summary.md and plots/index.md. Two rules, each in one place:

- `spreadsheet_safe`: a CSV cell that starts like a formula (=, +, -, @, tab, carriage
  return) is run by Excel and LibreOffice when the file is opened ("CSV injection"). Such a
  cell gets a leading apostrophe, the OWASP rule; numbers (-0.5) are left alone, and
  `from_spreadsheet` undoes the rule for bnbench's own readers.
- `markdown_safe`: HTML (<script>, <img onerror=...>) and the characters that would break a
  table row or make a link are escaped, so a label shows as the text it is.
"""

from __future__ import annotations

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_QUOTE = "'"


def spreadsheet_safe(value: str) -> str:
    """`value` with a leading apostrophe when a spreadsheet would read it as a formula.

    A value that already starts with an apostrophe gets one more, so that `from_spreadsheet`
    gives back exactly what was written.
    """
    if value.startswith(_QUOTE) or (value.startswith(_FORMULA_STARTS) and not _is_number(value)):
        return _QUOTE + value
    return value


def from_spreadsheet(value: str) -> str:
    """The value `spreadsheet_safe` was given (a cell read back from bnbench's CSV files)."""
    rest = value[1:]
    if value.startswith(_QUOTE) and (rest.startswith(_QUOTE) or spreadsheet_safe(rest) != rest):
        return rest
    return value


_MARKDOWN_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "`": "\\`",
                     "\n": " ", "\r": " "}  # fmt: skip


def markdown_safe(text: str) -> str:
    """`text` for a markdown file: no HTML, no link, no table cell boundary, one line."""
    escaped = "".join(_MARKDOWN_ESCAPES.get(char, char) for char in text)
    return escaped.replace("](", "]\\(")  # "[text](url)" is a link; "[0.1, 0.2]" is not


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
