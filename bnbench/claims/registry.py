"""The claims bnbench tests: a constant registry from a claim's id to its entry.

Each entry is a module of `bnbench.claims.catalog`, loaded by name in the order of
`catalog.IDS` (the order of the report) and checked against its YAML as it loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from bnbench.claims import catalog
from bnbench.claims.claim import Claim
from bnbench.config.registries import suggest
from bnbench.errors import SpecError

CLAIMS: Mapping[str, Claim] = MappingProxyType({cid: catalog.load(cid) for cid in catalog.IDS})


def select(only: str | None) -> list[Claim]:
    """The claims named in a comma-separated `only` (all claims when None), in registry order.

    Raises:
        SpecError: a name that is not a claim id (with the closest id), or an empty list.
    """
    if only is None:
        return list(CLAIMS.values())
    names = [name.strip() for name in only.split(",") if name.strip()]
    if not names:
        raise SpecError(f"--only {only!r} names no claim; available: {', '.join(CLAIMS)}")
    for name in names:
        if name not in CLAIMS:
            raise SpecError(
                f"unknown claim {name!r}{suggest(name, CLAIMS)}; available: {', '.join(CLAIMS)}"
            )
    return [claim for claim in CLAIMS.values() if claim.id in names]
