"""The claims catalog: every claim has a scenario whose data reach each verdict, every claim's
module agrees with its YAML (checked as it loads), and the YAMLs ship with the package."""

from __future__ import annotations

import importlib.resources
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bnbench.claims import catalog
from bnbench.claims.claim import Claim, Reduction
from bnbench.claims.registry import CLAIMS
from bnbench.errors import SpecError
from tests.support.claims_scenarios import AGAINST, FOR, SCENARIOS, UNCLEAR, VERDICT

ROOT = Path(__file__).resolve().parents[1]
# Findings a scenario's effect does not drive through all three verdicts (tested apart).
UNDRIVEN = {("covariate_shift", 1)}
# Scenarios whose effect drives both of the claim's findings to the same verdict.
BOTH_FINDINGS = ("input_scaling", "small_batch_examples", "dropout_order")


def test_every_claim_has_a_scenario():
    assert set(SCENARIOS) == set(CLAIMS)


@pytest.mark.parametrize("effect", [FOR, AGAINST, UNCLEAR])
@pytest.mark.parametrize("claim_id", list(SCENARIOS))
def test_each_verdict_is_reachable(tmp_path: Path, claim_id: str, effect: str):
    evidence = SCENARIOS[claim_id](effect).evidence(tmp_path)
    findings = CLAIMS[claim_id].assess(evidence).findings
    assert findings, claim_id
    assert findings[0].verdict == VERDICT[effect]


@pytest.mark.parametrize("claim_id", list(SCENARIOS))
def test_every_finding_is_reachable(tmp_path: Path, claim_id: str):
    """Each finding of a claim says all three verdicts across the scenarios."""
    seen: dict[int, set[str]] = {}
    for effect in (FOR, AGAINST, UNCLEAR):
        evidence = SCENARIOS[claim_id](effect).evidence(tmp_path / effect)
        for i, found in enumerate(CLAIMS[claim_id].assess(evidence).findings):
            seen.setdefault(i, set()).add(found.verdict)
    for i, verdicts in seen.items():
        if (claim_id, i) not in UNDRIVEN:
            assert verdicts == {"supported", "not supported", "inconclusive"}, (claim_id, i)


@pytest.mark.parametrize("effect", [FOR, AGAINST, UNCLEAR])
@pytest.mark.parametrize("claim_id", BOTH_FINDINGS)
def test_every_finding_reaches_each_verdict(tmp_path: Path, claim_id: str, effect: str):
    findings = CLAIMS[claim_id].assess(SCENARIOS[claim_id](effect).evidence(tmp_path)).findings
    assert len(findings) == 2
    assert [f.verdict for f in findings] == [VERDICT[effect]] * 2, [f.statistic for f in findings]


# --- a claim's module and its YAML agree, and ship with the package ---------------------------


def _claim(**changes: object) -> Claim:
    shipped = CLAIMS["ghost_batch"]
    fields: dict = dict(id="ghost_batch", statement=shipped.statement, source="s", measures="m",
                        runtime="r", quick=Reduction(), arms=("bn", "ghost_bn"),
                        assess=shipped.assess, draw=shipped.draw)  # fmt: skip
    return Claim(**{**fields, **changes})


def _copy(tmp_path: Path, header: str | None = None) -> Path:
    text = (catalog.folder() / "ghost_batch.yaml").read_text(encoding="utf-8")
    if header is not None:
        text = header + "\n" + text.split("\n", 1)[1]
    path = tmp_path / "ghost_batch.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_shipped_claim_agrees_with_its_yaml():
    for claim_id in catalog.IDS:
        catalog.check(CLAIMS[claim_id], catalog.folder() / f"{claim_id}.yaml")
    assert list(CLAIMS) == list(catalog.IDS)


def test_a_statement_that_differs_from_the_header_is_refused(tmp_path: Path):
    path = _copy(tmp_path, '# ghost_batch: "Ghost batch norm helps."')
    with pytest.raises(SpecError, match=r"quotes the claim as 'Ghost batch norm helps.', but"):
        catalog.check(_claim(), path)
    catalog.check(_claim(statement="Ghost batch norm helps."), path)  # the same: accepted


def test_a_header_without_the_quoted_statement_is_refused(tmp_path: Path):
    path = _copy(tmp_path, "# ghost batch norm, on the digits")
    with pytest.raises(SpecError, match=r"header quotes the claim as None"):
        catalog.check(_claim(), path)


def test_the_statement_may_wrap_over_header_lines(tmp_path: Path):
    header = (
        '# ghost_batch: "Ghost batch norm improves generalization in\n#   large-batch training."'
    )
    path = _copy(tmp_path, header + " (Hoffer et al.)")
    assert catalog.header_statement(path, "ghost_batch") == CLAIMS["ghost_batch"].statement


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"arms": ("bn", "ghost")}, "its rule reads the arm(s) ghost, which the file does not "
                                 "declare (its arms: bn, ghost_bn)"),
     ({"quick": Reduction(arms=["bn", "plain"])}, "its quick budget keeps the arm(s) plain")],
)  # fmt: skip
def test_an_arm_the_rule_reads_must_be_in_the_yaml(tmp_path: Path, changes, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        catalog.check(_claim(**changes), _copy(tmp_path))


def test_a_missing_yaml_is_refused(tmp_path: Path):
    with pytest.raises(SpecError, match=r"its ablation .* does not exist"):
        catalog.check(_claim(), tmp_path / "ghost_batch.yaml")


def test_a_user_claim_file_missing_an_arm_is_refused_before_anything_runs(tmp_path: Path):
    from typer.testing import CliRunner

    from bnbench.cli import app
    from tests.support.specs import files_under

    configs, out = tmp_path / "configs", tmp_path / "claims"
    configs.mkdir()
    text = _copy(tmp_path).read_text(encoding="utf-8").replace("ghost_bn:", "ghost:")
    (configs / "ghost_batch.yaml").write_text(text, encoding="utf-8")
    (configs / "mlp_digits.yaml").write_text(
        (catalog.folder() / "mlp_digits.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    result = CliRunner().invoke(app, ["claims", "run", "--out", str(out), "--only", "ghost_batch",
                                      "--configs", str(configs), "--quick"])  # fmt: skip
    assert result.exit_code == 2
    assert "its rule reads the arm(s) ghost_bn" in " ".join(result.stderr.split())
    assert files_under(out) == []


def test_the_claims_ship_as_package_data():
    shipped = importlib.resources.files("bnbench.claims.catalog")
    for claim_id in catalog.IDS:
        assert shipped.joinpath(f"{claim_id}.py").is_file()
        assert shipped.joinpath(f"{claim_id}.yaml").is_file()
    # The base spec the claims share is the user-facing configs/mlp_digits.yaml, copied.
    copy = shipped.joinpath("mlp_digits.yaml").read_text(encoding="utf-8")
    assert copy == (ROOT / "configs" / "mlp_digits.yaml").read_text(encoding="utf-8")


@pytest.mark.slow
def test_a_wheel_holds_every_claim_and_lists_them_installed(tmp_path: Path):
    """`pip wheel` packs each claim's module and YAML and their base spec; installed from the
    wheel (not this checkout), `bnbench claims list` works from any folder."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", str(ROOT), "-w", str(wheels)], check=True, cwd=tmp_path)  # fmt: skip
    (wheel,) = wheels.glob("bnbench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for claim_id in catalog.IDS:
        assert f"bnbench/claims/catalog/{claim_id}.yaml" in names
        assert f"bnbench/claims/catalog/{claim_id}.py" in names
    assert "bnbench/claims/catalog/mlp_digits.yaml" in names
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True)  # fmt: skip
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import bnbench.cli as c; "
            "print(c.__file__); sys.argv = ['bnbench', 'claims', 'list', '--json']; "
            "c.main()")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True,
                         cwd=tmp_path, env=env, check=True)  # fmt: skip
    first, rest = out.stdout.split("\n", 1)
    assert first.startswith(str(site))
    assert '"id": "shift_adaptation"' in rest
