"""`claims run --seeds`: a count or a list, validated before anything is written, recorded in the
claim folder's ablation and in claims.json; a folder run with other seeds is refused with the
seeds that resume it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bnbench.claims.claim import QUICK_SEEDS
from bnbench.claims.plan import (
    claim_mode,
    extends,
    load_claim,
    parse_seeds,
    plan_claims,
    seed_text,
)
from bnbench.claims.registry import CLAIMS
from bnbench.cli import app
from bnbench.errors import SpecError
from bnbench.results import rundir
from bnbench.results.files import write_yaml

runner = CliRunner()


@pytest.mark.parametrize(
    ("text", "seeds"),
    [("6", [0, 1, 2, 3, 4, 5]), ("1", [0]), ("0-3,20", [0, 1, 2, 3, 20]), ("7,3", [7, 3]),
     ("5-5", [5]), (" 100-102 , 9 ", [100, 101, 102, 9])],
)  # fmt: skip
def test_seeds_parse_as_a_count_or_a_list(text: str, seeds: list[int]):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(
    ("text", "message"),
    [("0", "a count must be at least 1"), ("six", "'six' is not a seed or a range"),
     ("-1", "'-1' is not a seed or a range"), ("5-3", "the range '5-3' runs backwards"),
     ("1,2,1", "seed(s) given twice: 1"), ("0-4,3-6", "given twice: 3-4"),
     ("", "'' is not a seed"), ("1,", "'' is not a seed"), ("1.5", "'1.5' is not a seed")],
)  # fmt: skip
def test_bad_seeds_are_refused_with_the_value(text: str, message: str):
    with pytest.raises(SpecError, match="--seeds") as err:
        parse_seeds(text)
    assert message in str(err.value)


@pytest.mark.parametrize("text", ["0", "3-1", "2,2", "x"])
def test_bad_seeds_exit_2_and_write_nothing(tmp_path: Path, text: str):
    out = tmp_path / "claims"
    result = runner.invoke(app, ["claims", "run", "--out", str(out), "--only", "ghost_batch",
                                 "--quick", "--seeds", text])  # fmt: skip
    assert result.exit_code == 2
    assert "--seeds" in result.stderr and "Traceback" not in result.output
    assert not out.exists()


def test_seed_text_writes_ranges_that_parse_back():
    for seeds in ([0, 1, 2, 3, 4, 5], [0, 1, 2, 20], [7], [3, 5, 6, 7, 9]):
        assert parse_seeds(seed_text(seeds)) == seeds
    assert seed_text([0, 1, 2, 20]) == "0-2,20"


def test_budgets_default_to_the_power_argument_and_seeds_replace_them():
    claim = CLAIMS["ghost_batch"]
    assert load_claim(claim, True).spec.seed_list == list(range(QUICK_SEEDS)) == list(range(10))
    assert load_claim(claim, False).spec.seed_list == list(range(10))
    chosen = load_claim(claim, True, seeds=[100, 101, 102])
    assert chosen.spec.seed_list == [100, 101, 102]
    assert {run.seed for run in chosen.runs} == {100, 101, 102}
    full = load_claim(CLAIMS["lr_range"], False, seeds=[4, 5])
    assert full.resolved == {**load_claim(CLAIMS["lr_range"], False).resolved, "seeds": [4, 5]}
    # A folder run with chosen seeds is still the quick (or full) budget of its claim.
    assert claim_mode(claim, chosen.resolved) == "quick"
    assert claim_mode(CLAIMS["lr_range"], full.resolved) == "full"


def test_a_folder_run_with_other_seeds_is_refused_with_how_to_resume(tmp_path: Path):
    claim = CLAIMS["ghost_batch"]
    out = tmp_path / "claims"
    write_yaml(out / claim.id / "ablation.yaml", load_claim(claim, True, seeds=[0, 1, 2]).resolved)
    with pytest.raises(SpecError, match=r"run with seeds 0-2, not 0-9; to resume it, give "
                                        r"--seeds 0-2"):  # fmt: skip
        plan_claims([claim], out, True)
    # More seeds after its own: --until-decided may extend it, and so may --seeds asking
    # for them; seeds that do not start with the folder's may not.
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    for extend in (True, False):
        planned = plan_claims([claim], out, True, seeds=[0, 1, 2, 3], extend=extend)
        assert planned[0][1].spec.seed_list == [0, 1, 2, 3]
        with pytest.raises(SpecError, match="to add seeds, a list that starts with those"):
            plan_claims([claim], out, True, seeds=[1, 2, 3, 4], extend=extend)  # not a prefix
    with pytest.raises(SpecError, match="not 0-1;"):
        plan_claims([claim], out, True, seeds=[0, 1])  # fewer: not this folder's pass
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before  # wrote nothing


def test_extends_only_adds_seeds_after_the_stored_ones():
    stored = {"name": "x", "seeds": [0, 1], "grid": {}}
    assert extends(stored, {**stored, "seeds": [0, 1, 2]})
    assert not extends(stored, {**stored, "seeds": [1, 2, 3]})
    assert not extends(stored, {**stored, "seeds": [0, 1, 2], "grid": {"a": [1]}})


def test_group_size_below_one_exits_2_and_writes_nothing(tmp_path: Path):
    out = tmp_path / "claims"
    result = runner.invoke(app, ["claims", "run", "--out", str(out), "--only", "ghost_batch",
                                 "--quick", "--group-size", "0"])  # fmt: skip
    assert result.exit_code == 2
    assert "--group-size must be at least 1, got 0" in result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_group_size_one_trains_every_claim_run_alone_and_says_why(tmp_path: Path):
    """As `ablate --group-size 1`: on JAX, each seed of a claim trains alone (the per-seed path
    that `scripts/bench_seeds.py` compares the groups with), and its summary says why."""
    out = tmp_path / "claims"
    result = runner.invoke(app, ["claims", "run", "--out", str(out), "--only", "ghost_batch",
                                 "--quick", "--seeds", "2", "--group-size", "1", "-q",
                                 "--no-report"])  # fmt: skip
    assert result.exit_code == 0, result.output
    runs = sorted((out / "ghost_batch" / "runs").iterdir())
    summaries = [rundir.read_summary(run) for run in runs]
    assert runs and all(s is not None and s.backend == "jax" for s in summaries)
    assert {(s.vectorized, s.vectorized_reason) for s in summaries if s} == {
        (False, "a group of one seed (--group-size 1)")}  # fmt: skip
