"""The LaTeX rendering of a summary: a booktabs table with a caption and a label.

It knows nothing about ablations: `bnbench.analysis.tables` hands it the columns (key and header),
the rows as display text and the caption, and checks a user's column choice through
`check_columns` before anything is written. Cell text is escaped here (`tex`), so an arm named
`bn_50%` or `a&b` cannot break the document.

The table needs `\\usepackage{booktabs,adjustbox}`: it is a `table` float (caption above, as
tables take it) in `\\small` with narrower column gaps, inside an adjustbox with
`max width=\\linewidth`, which shrinks the table only when it would be wider than the text (many
columns, long arm names) and leaves it at its size otherwise: it always fits the page.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence

from bnbench.errors import SpecError

# The columns a paper's table usually needs: what was compared, the score, how fast, how sure.
DEFAULT_COLUMNS = ("arm", "cell", "score", "to_target", "reached", "diff")

_ESCAPES = {c: "\\" + c for c in "&%$#_{}"} | {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}"}
# `[` right after a row's `\\` would be read as its optional argument: braced, it is plain text.
_ESCAPES |= {"^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}"}
_ESCAPES |= {"|": r"\textbar{}", "[": "{[}", "]": "{]}", "\n": " ", "\r": " ", "\t": " "}
_SYMBOLS = {"±": r"$\pm$", "Δ": r"$\Delta$", "×": r"$\times$", "−": "$-$", "≥": r"$\geq$"}
_SYMBOLS |= {"≤": r"$\leq$", "†": r"\dag{}", "★": r"$\star$", "–": "--", "γ": r"$\gamma$"}
_SYMBOLS |= {"β": r"$\beta$", "…": r"\ldots{}"}


# A hyphen that starts a number ("-0.014", "[-0.08, +0.05]"), not one inside a word ("bn-2").
_NEGATIVE = re.compile(r"(?<![\w.])-(?=\.?\d)")


def tex(text: str) -> str:
    """`text` as LaTeX: special characters escaped, the symbols bnbench prints as math, and a
    number's minus sign as a minus ($-$), not a hyphen."""
    text = _NEGATIVE.sub("−", text)
    return "".join(_ESCAPES.get(c) or _SYMBOLS.get(c) or c for c in text)


def label_for(name: str) -> str:
    """A `\\label` key for the table of `name`, e.g. "tab:bn-placement"."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"tab:{slug or 'summary'}"


def check_columns(requested: Sequence[str], available: Sequence[str]) -> list[str]:
    """The requested columns, in order, when each is available and named once.

    Raises:
        SpecError: none is given, one is given twice, or one is unknown; the message lists the
            available columns and suggests the closest name.
    """
    names = [name.strip() for name in requested]
    if not names or not all(names):
        raise SpecError(f"--columns: give column names separated by commas; {_listing(available)}")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise SpecError(f"--columns: {', '.join(twice)} given twice")
    for name in names:
        if name not in available:
            lowered = {c.lower(): c for c in available}
            close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.5)
            hint = f"; did you mean {lowered[close[0]]!r}?" if close else ""
            raise SpecError(f"--columns: unknown column {name!r}{hint} {_listing(available)}")
    return names


def _listing(available: Sequence[str]) -> str:
    return f"(available: {', '.join(available)})"


def latex_table(
    columns: Mapping[str, str],
    rows: Sequence[Mapping[str, str]],
    *,
    caption: str,
    label: str,
    text_columns: Sequence[str] = (),
) -> str:
    """A booktabs `table` float of `rows`, one column per key of `columns`.

    Args:
        columns: Key -> header, in column order; every row has every key.
        rows: Display text of each row (escaped here).
        caption: The caption, plain text (escaped here).
        label: The `\\label` key, used as given.
        text_columns: Keys aligned left; the others (numbers) are aligned right.

    Returns:
        The LaTeX source, ending in a newline.
    """
    align = "".join("l" if key in text_columns else "r" for key in columns)
    lines = [
        "% Written by bnbench; needs \\usepackage{booktabs,adjustbox}.",
        r"\begin{table}[htbp]",
        r"\centering",
        r"\small",
        r"\setlength{\tabcolsep}{4pt}",
        rf"\caption{{{tex(caption)}}}",
        rf"\label{{{label}}}",
        r"\begin{adjustbox}{max width=\linewidth}",
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(tex(header) for header in columns.values()) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(tex(row[key]) for key in columns) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{adjustbox}", r"\end{table}"]
    return "\n".join(lines) + "\n"
