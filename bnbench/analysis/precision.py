"""How many decimals a table column shows: one number per column, chosen from the column.

A column whose rows show different numbers of decimals (0.91 above 0.9133) reads as if its rows
were known to different precision, and its digits do not line up. So each numeric column of the
summary tables is printed with one number of decimals for every row, chosen from the column:
enough for its smallest spread (a std, the half-width of an interval) to show two significant
digits, as far as a few seeds know it; or, in a column without a spread, enough for its smallest
value to show the column's significant digits. p-values show two significant digits of the
column's smallest, and at most `P_DECIMALS` decimals ("< 0.0001" below that).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

# Never more decimals than this in a column: past it, a column of tiny values is a scale issue.
MAX_DECIMALS = 6
# p-values: at most this many decimals; smaller ones print as "< 0.0001".
P_DECIMALS = 4


def decimals_for(values: Iterable[float | None], digits: int) -> int:
    """Decimals that show `digits` significant digits of the smallest nonzero finite magnitude
    among `values` (None and non-finite values are skipped); 0 when there is none, at most
    `MAX_DECIMALS`."""
    magnitudes = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    if not magnitudes:
        return 0
    needed = digits - 1 - math.floor(math.log10(min(magnitudes)))
    return max(0, min(MAX_DECIMALS, needed))


def column_decimals(spreads: Iterable[float | None], values: Iterable[float | None],
                    digits: int) -> int:  # fmt: skip
    """Decimals of a column: two significant digits of its smallest spread, or, when no row has
    a spread, `digits` significant digits of its smallest value."""
    found = [s for s in spreads if s is not None and math.isfinite(s) and s != 0]
    return decimals_for(found, 2) if found else decimals_for(values, digits)


def fixed(value: float | None, decimals: int, sign: bool = False) -> str:
    """`value` with `decimals` decimals ("+" on positive values with `sign`); "" for None or a
    non-finite value."""
    if value is None or not math.isfinite(value):
        return ""
    return format(value, f"{'+' if sign else ''}.{decimals}f")


def p_decimals(values: Iterable[float | None]) -> int:
    """Decimals of a p-value column: two significant digits of its smallest, at most
    `P_DECIMALS`."""
    return min(P_DECIMALS, max(1, decimals_for(values, 2)))


def p_text(value: float | None, decimals: int) -> str:
    """A p-value with `decimals` decimals, or "< 0.0001" when it would round to zero."""
    if value is None or not math.isfinite(value):
        return ""
    if round(value, decimals) == 0:
        return f"< {10.0 ** -decimals:.{decimals}f}"
    return fixed(value, decimals)
