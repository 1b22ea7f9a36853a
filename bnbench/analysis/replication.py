"""Replication built in: a verdict re-derived on parts of its seeds, e.g. "replicates 2/2 halves".

A finding whose verdict depends on which seeds ran is not settled. The same rule is applied to
disjoint halves of the seeds (alternate seeds, so both halves span the seed list) or to the
seeds less one each time; the result counts the parts that reach the full data's verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")
Method = Literal["halves", "leave_one_out"]


@dataclass(frozen=True)
class Replication(Generic[Outcome]):
    """How many parts of the seeds reach the verdict of all of them.

    Attributes:
        verdict: The verdict on all seeds.
        parts: The verdict on each part.
        method: "halves" or "leave_one_out".
    """

    verdict: Outcome
    parts: tuple[Outcome, ...]
    method: Method

    @property
    def agree(self) -> int:
        return sum(part == self.verdict for part in self.parts)

    @property
    def settled(self) -> bool:
        """Whether every part agrees (a finding that is not is never printed as settled)."""
        return self.agree == len(self.parts)

    def text(self) -> str:
        """E.g. "replicates 2/2 halves" or "replicates 5/6 leave-one-out"."""
        name = "halves" if self.method == "halves" else "leave-one-out"
        return f"replicates {self.agree}/{len(self.parts)} {name}"


def replicate(items: Sequence[Item], rule: Callable[[Sequence[Item]], Outcome],
              method: Method = "halves") -> Replication[Outcome]:  # fmt: skip
    """Apply `rule` to all `items` (one per seed, in seed order) and to parts of them.

    Raises:
        ValueError: fewer than 2 items, or an unknown method.
    """
    if len(items) < 2:
        raise ValueError(f"replication needs at least 2 seeds; got {len(items)}")
    if method == "halves":
        parts = [items[0::2], items[1::2]]
    elif method == "leave_one_out":
        parts = [[*items[:i], *items[i + 1 :]] for i in range(len(items))]
    else:
        raise ValueError(f"method {method!r} is not one of halves, leave_one_out")
    return Replication(rule(items), tuple(rule(part) for part in parts), method)
