"""Claims retargeted by rule: `claims run --dataset NAME` (end to end on tiny Keras-cache files)
and `claims run --base SPEC` (applicable claims run, the others skipped with their reasons)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bnbench.claims.claim import QUICK_SEEDS
from bnbench.claims.registry import CLAIMS, select
from bnbench.claims.retarget import Retargeted, onto_base, onto_dataset, plan_retargeted, retarget
from bnbench.cli import app
from bnbench.errors import SpecError
from tests.support.keras_cache import point_keras_home, write_cifar10, write_mnist
from tests.support.specs import TINY_SPEC, files_under

runner = CliRunner()
CNN_DIGITS = Path(__file__).resolve().parents[1] / "configs" / "cnn_digits.yaml"


@pytest.fixture
def keras_home(tmp_path, monkeypatch) -> Path:
    return point_keras_home(tmp_path / "keras_home", monkeypatch)


def _spec_file(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def test_dataset_replaces_the_data_scales_the_budget_and_drops_the_absolute_target(keras_home):
    write_mnist(keras_home, 100, 20)  # 90 training examples after the 10% held out
    done = retarget(CLAIMS["faster_training"], True, onto_dataset("mnist", None))
    assert isinstance(done, Retargeted)
    run = done.ablation.runs[0].spec
    assert run.dataset.name == "mnist" and run.dataset.flatten
    assert run.training.target_value is None and run.training.target_metric is None
    # 400 steps at batch 32 over 1,293 digits = 9.9 epochs -> ceil(9.9 x 90 / 32) = 28 steps,
    # evaluated as often as shipped (400 / 20 = 20 evaluations).
    assert run.training.steps == 28 and run.training.eval_every == 2
    assert "28 steps = ceil(9.89946 epochs × 90 examples / batch 32)" in done.notes[0]
    assert run.model.activation == "sigmoid"  # the shipped network stays with --dataset


def test_a_claim_budgeted_in_epochs_is_evaluated_as_often_per_pass_as_shipped(keras_home):
    # small_batch_examples keeps its 2 epochs; evaluated every shipped 20 steps, 54,000 MNIST
    # examples at batch 2 would be 2,700 evaluations a run (estimated at 13 h for the suite).
    write_mnist(keras_home, 2600, 20)  # 2,340 training examples: 1.81x digits' 1,293
    done = retarget(CLAIMS["small_batch_examples"], True, onto_dataset("mnist", None))
    assert isinstance(done, Retargeted)
    assert {run.spec.training.epochs for run in done.ablation.runs} == {2}
    assert {run.spec.training.eval_every for run in done.ablation.runs} == {36}  # 20 x 1.81
    assert "evaluated every 36 steps (the shipped 20 steps over its 1,293" in done.notes[0]


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_claims_run_on_a_keras_dataset_end_to_end(keras_home, tmp_path, dataset):
    if dataset == "mnist":
        write_mnist(keras_home, 40, 10)
    else:
        write_cifar10(keras_home, 8)
    out = tmp_path / "claims"
    args = ["claims", "run", "--dataset", dataset, "--only", "covariate_shift", "--quick",
            "--out", str(out), "-q"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "claims.json").read_text(encoding="utf-8"))
    assert [c["id"] for c in report["claims"]] == ["covariate_shift"]
    assert report["retarget"]["onto"] == f"--dataset {dataset}"
    assert report["retarget"]["skipped"] == {}
    configs = sorted((out / "covariate_shift" / "runs").glob("*/config.yaml"))
    assert len(configs) == 2 * QUICK_SEEDS  # 2 arms x the quick seeds
    assert {yaml.safe_load(p.read_text())["dataset"]["name"] for p in configs} == {dataset}
    assert "## Retargeted: --dataset" in (out / "claims.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "mnsit"], "unknown dataset 'mnsit'"),
        (["--dataset", "npz"], "--dataset npz needs --dataset-path"),
        (["--dataset", "mnist", "--base", str(CNN_DIGITS)], "not both"),
        (["--dataset-path", "x.npz"], "--dataset-path goes with --dataset npz"),
        (["--dataset", "digits", "--dataset-path", "x.npz"], "is for --dataset npz"),
        (["--dataset", "npz", "--dataset-path", "missing.npz"], "no such file"),
        (["--base", "missing.yaml"], "missing.yaml"),
    ],
)
def test_bad_retarget_input_exits_2_and_writes_nothing(tmp_path: Path, args, message):
    out = tmp_path / "claims"
    result = runner.invoke(app, ["claims", "run", "--out", str(out), "--quick", *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert files_under(out) == []


def test_base_runs_the_applicable_claims_on_the_conv_net_and_skips_the_others_with_reasons():
    planned, skipped = plan_retargeted(select(None), Path("/nonexistent/out"), True,
                                       onto_base(CNN_DIGITS))  # fmt: skip
    reasons = {s.claim.id: s.reason for s in skipped}
    assert set(reasons) == {"vanishing_gradients", "depth", "input_scaling"}
    assert "a deep sigmoid MLP" in reasons["vanishing_gradients"]
    assert "two_scale" in reasons["input_scaling"]
    ran = {p.claim.id: p for p in planned}
    assert set(ran) | set(reasons) == set(CLAIMS)
    for entry in planned:  # the user's conv net, not the shipped MLP
        assert entry.ablation.runs[0].spec.model.blocks[0].type == "conv2d"
    # dropout_order's blocks 1 and 2 of 3 dense blocks map onto the last two of conv, conv, dense
    # (block 2, the global pooling, takes no dropout).
    arms = ran["dropout_order"].ablation.spec.arms
    assert arms == {"dropout_before_bn": {"model.blocks.1.dropout": 0.5},
                    "dropout_after_bn": {"model.blocks.3.dropout": 0.5}}  # fmt: skip
    init = ran["init_scale"].ablation.runs[0].spec
    assert init.model.activation == "relu" and init.training.learning_rate == 0.1
    assert init.model.initializer.kind == "random_normal"  # a key the claim keeps


def test_a_network_with_too_few_blocks_skips_the_claims_that_need_them(tmp_path):
    spec = copy.deepcopy(TINY_SPEC)
    spec["model"]["blocks"] = [{"type": "dense", "units": 16}]
    only = [CLAIMS["dropout_order"], CLAIMS["regularization"], CLAIMS["placement"]]
    planned, skipped = plan_retargeted(only, tmp_path / "out", True,
                                       onto_base(_spec_file(tmp_path, spec)))  # fmt: skip
    assert [p.claim.id for p in planned] == ["placement"]
    assert {s.claim.id for s in skipped} == {"dropout_order", "regularization"}
    assert all("which has 1 dense/conv block(s)" in s.reason for s in skipped)


def test_claims_run_base_lists_the_skipped_in_output_and_claims_json(tmp_path):
    out = tmp_path / "claims"
    args = ["claims", "run", "--base", str(_spec_file(tmp_path, TINY_SPEC)), "--only",
            "covariate_shift,depth", "--quick", "--out", str(out), "-q"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "skipped depth" in " ".join(result.output.split())
    report = json.loads((out / "claims.json").read_text(encoding="utf-8"))
    assert [c["id"] for c in report["claims"]] == ["covariate_shift"]
    assert "is about a network it fixes" in report["retarget"]["skipped"]["depth"]
    assert "Skipped" in (out / "claims.md").read_text(encoding="utf-8")


def test_base_where_no_claim_applies_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "claims"
    args = ["claims", "run", "--base", str(CNN_DIGITS), "--only", "depth", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "no claim applies" in result.output
    assert files_under(out) == []


def test_a_dataset_not_in_the_cache_is_a_clear_error(keras_home, tmp_path):
    with pytest.raises(SpecError, match="mnist"):
        plan_retargeted([CLAIMS["placement"]], tmp_path / "o", True, onto_dataset("mnist", None))


def _with_histories(root: Path, reach: dict[str, int], plateau: float = 0.9) -> Path:
    """A faster_training tree without a recorded target whose arms' val. accuracy climbs from
    chance to `plateau`, reaching it at step `reach[arm]` (history every 10 steps to 200)."""
    from bnbench.results import rundir
    from bnbench.results.files import write_csv
    from tests.support.claims_tree import SEEDS, Tree

    tree = Tree("faster_training", ["no_bn", "bn_moving", "bn_recalibrated"])
    for arm in tree.arms:
        for seed in SEEDS:
            tree.add(arm, seed, test=plateau, total=200)
    folder = tree.write(root)
    for run_dir in sorted((folder / "runs").iterdir()):
        arm = rundir.read_entry(run_dir)["arm"]
        seed = int(rundir.read_entry(run_dir)["seed"])
        end = reach[arm] + 10 * (seed % 2)  # seeds differ a little, so the interval has width
        rows = [{"step": s, "val_accuracy": 0.1 + (plateau - 0.1) * min(1.0, s / end)}
                for s in range(10, 201, 10)]  # fmt: skip
        write_csv(run_dir / rundir.HISTORY, rows, ["step", "val_accuracy"])
    return folder


@pytest.mark.parametrize("bn_reach, verdict", [(40, "supported"), (160, "not supported")])
def test_faster_training_times_a_relative_target_from_the_histories(tmp_path, bn_reach, verdict):
    from bnbench.claims.evidence import load_evidence

    folder = _with_histories(tmp_path, {"no_bn": 100, "bn_moving": bn_reach,
                                        "bn_recalibrated": bn_reach})  # fmt: skip
    assessment = CLAIMS["faster_training"].assess(load_evidence(folder))
    assert [f.verdict for f in assessment.findings] == [verdict, verdict]
    # 0.1 + 0.9 x (0.9 - 0.1) = 0.82, from the slower arm's plateau, the same for every arm
    assert "target val_accuracy 0.82 = 0.1 + 0.9 × (plateau 0.9 − 0.1)" in assessment.sentences[0]


def test_a_folder_retargeted_onto_other_data_is_refused_and_left_alone(tmp_path):
    from bnbench.results.files import write_json

    out = tmp_path / "claims"
    out.mkdir()
    write_json(out / "retarget.json", {"onto": "--dataset mnist", "budget": "quick",
                                       "notes": {}, "skipped": {}})  # fmt: skip
    before = files_under(out)
    args = ["claims", "run", "--dataset", "digits", "--only", "placement", "--quick",
            "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "holds claims run --dataset mnist" in result.output
    assert files_under(out) == before


def test_seeds_that_extend_a_retargeted_folder_add_to_it_and_others_are_refused(tmp_path):
    """`--dataset digits --seeds 0-3` over a folder of seeds 0-2 adds seed 3; seeds that do
    not start with the folder's are refused, and planning writes nothing."""
    claim, onto, out = CLAIMS["placement"], onto_dataset("digits", None), tmp_path / "claims"
    first = retarget(claim, True, onto, seeds=[0, 1, 2])
    assert isinstance(first, Retargeted)
    folder = out / claim.id
    folder.mkdir(parents=True)
    (folder / "ablation.yaml").write_text(yaml.safe_dump(first.ablation.resolved), "utf-8")
    before = files_under(out)
    planned, _ = plan_retargeted([claim], out, True, onto, seeds=[0, 1, 2, 3])
    assert planned[0].ablation.spec.seed_list == [0, 1, 2, 3]
    with pytest.raises(SpecError, match="holds another ablation of claim 'placement'"):
        plan_retargeted([claim], out, True, onto, seeds=[1, 2, 3, 4])
    assert files_under(out) == before
