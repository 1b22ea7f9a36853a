"""The tree's top files (ablation.yaml, manifest.json) are read only through their typed owners
in `bnbench.results.tree_files`: no module outside `bnbench/results/` reads them raw."""

from __future__ import annotations

import re
from pathlib import Path

import bnbench

PACKAGE = Path(bnbench.__file__).parent
RAW_READ = re.compile(r"read_mapping\([^)\n]*\b(ABLATION|MANIFEST)\b")


def raw_reads(root: Path) -> list[str]:
    """`path:line` of each `read_mapping(... ABLATION/MANIFEST ...)` outside root/results/."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] == "results":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if RAW_READ.search(line):
                found.append(f"{path.relative_to(root.parent)}:{number}")
    return found


def test_no_module_outside_results_reads_ablation_or_manifest_raw():
    assert raw_reads(PACKAGE) == [], "use tree_files.read_ablation / read_manifest"


def test_the_check_finds_a_raw_read(tmp_path):
    # The rule above can fail: a module reading manifest.json raw is found; results/ is exempt.
    (tmp_path / "pkg" / "claims").mkdir(parents=True)
    (tmp_path / "pkg" / "results").mkdir()
    raw = "stored = read_mapping(folder / MANIFEST) if ok else None\n"
    (tmp_path / "pkg" / "claims" / "bad.py").write_text("x = 1\n" + raw)
    (tmp_path / "pkg" / "results" / "owner.py").write_text(raw)
    assert raw_reads(tmp_path / "pkg") == ["pkg/claims/bad.py:2"]
