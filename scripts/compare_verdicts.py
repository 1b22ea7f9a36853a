"""Compare the verdicts of two claims reports (claims.json), finding by finding.

Measures how much a claims pass depends on its seeds: run the same budget with two disjoint
seed sets and count the findings whose verdict differs (issue 20's target: at most one). Only
findings present in both files are compared; the others are listed. Runtime: instant.

    python scripts/compare_verdicts.py results/claims/claims.json /tmp/s100/claims.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def verdicts(path: Path) -> dict[tuple[str, str], str]:
    """(claim id, finding label) -> verdict, from a claims.json."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return {(claim["id"], found["label"]): found["verdict"]
            for claim in data["claims"] for found in claim["findings"]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path, help="a claims.json")
    parser.add_argument("second", type=Path, help="another claims.json")
    args = parser.parse_args()
    first, second = verdicts(args.first), verdicts(args.second)
    common = [key for key in first if key in second]
    changed = [key for key in common if first[key] != second[key]]
    for claim_id, label in changed:
        print(f"{claim_id} / {label or '(only finding)'}: {first[(claim_id, label)]} -> "
              f"{second[(claim_id, label)]}")  # fmt: skip
    for key in sorted(set(first) ^ set(second)):
        print(f"only in one file: {key[0]} / {key[1] or '(only finding)'}")
    base = [key for key in changed
            if first[key].removesuffix(" (unstable)") != second[key].removesuffix(" (unstable)")]
    print(f"{len(changed)} of {len(common)} findings changed verdict; {len(base)} changed "
          "side or decision (not counting a change of the \"(unstable)\" mark only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
