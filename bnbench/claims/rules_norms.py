"""Verdict rules and figures of the claims about where and how to normalize.

regularization, small_batch (and small_batch_examples), placement, train_inference,
dropout_order and ghost_batch. Every accuracy is the final test accuracy under the BN statistics
the claim's config chose, and a run that diverged scores the chance rate of its data (it learned
nothing usable). dropout_order also reads `diagnostics/variance_shift.csv`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bnbench.claims.claim import Assessment, Finding
from bnbench.claims.drawing import by_x, colours, figure, paired_points
from bnbench.claims.evidence import Cell, Evidence
from bnbench.claims.measures import differences, finding, fmt, mean_of, per_seed
from bnbench.claims.verdicts import equivalence

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# regularization: BN "may replace dropout" when its test accuracy is no more than this below
# dropout's (a non-inferiority margin, 2 points of accuracy).
REPLACE_MARGIN = 0.02
# placement: with ReLU the two placements are "negligibly" different within ±2 points (TOST).
PLACEMENT_MARGIN = 0.02
BATCH = "training.batch_size"
ACTIVATION = "model.activation"
MOMENTUM = "model.norm.momentum"


def accuracy(evidence: Evidence, arm: str, cell: Cell | None = None) -> dict[int, float]:
    """Seed -> final test accuracy; a diverged run scores its data's chance rate."""
    rows = evidence.where(arm, cell)
    out = {}
    for seed, status, score, chance in zip(rows["seed"], rows["status"], rows["final_test_metric"],
                                           rows["chance_accuracy"], strict=True):  # fmt: skip
        diverged = status == "diverged" and chance is not None
        out[int(seed)] = float(chance) if diverged else float(score)
    return out


def _minus(first: dict[int, float], second: dict[int, float]) -> dict[int, float]:
    return {seed: first[seed] - second[seed] for seed in first.keys() & second.keys()}


# --- 4. regularization --------------------------------------------------------------------------

REGULARIZATION_ARMS = ("no_bn", "bn", "dropout", "bn_dropout")


def train_accuracy(evidence: Evidence, arm: str) -> dict[int, float]:
    """Seed -> inference-mode accuracy on the training probe at the last recorded step."""
    rows = evidence.diagnostics("train_inference_gap")
    rows = rows[rows["arm"] == arm]
    out = {}
    for seed, part in rows.groupby("seed"):
        last = part.sort_values("step").iloc[-1]
        out[int(seed)] = float(last["inference_mode_metric"])
    return out


def generalization_gaps(evidence: Evidence, arm: str) -> dict[int, float]:
    """Seed -> train accuracy (inference mode, training probe) − test accuracy."""
    return _minus(train_accuracy(evidence, arm), accuracy(evidence, arm))


def assess_regularization(evidence: Evidence) -> Assessment:
    gaps = {arm: generalization_gaps(evidence, arm) for arm in REGULARIZATION_ARMS}
    tests = {arm: accuracy(evidence, arm) for arm in REGULARIZATION_ARMS}
    findings = [
        finding("smaller generalization gap", "train − test accuracy gap, no BN − BN",
                per_seed(_minus(gaps["no_bn"], gaps["bn"])), 0.0, "above"),
        finding(f"may replace dropout (margin {REPLACE_MARGIN:g})",
                "test accuracy, BN − dropout", per_seed(_minus(tests["bn"], tests["dropout"])),
                -REPLACE_MARGIN, "above"),
    ]  # fmt: skip
    sentences = [
        f"{arm}: train accuracy {fmt(mean_of(train_accuracy(evidence, arm)))}, test accuracy "
        f"{fmt(mean_of(tests[arm]))}, gap {fmt(mean_of(gaps[arm]))}."
        for arm in REGULARIZATION_ARMS
    ]
    return Assessment(findings, sentences)


def draw_regularization(evidence: Evidence) -> Figure:
    fig, (left, right) = figure(2, "regularization on a small training set")
    paired_points(left, [(a, generalization_gaps(evidence, a)) for a in REGULARIZATION_ARMS],
                  "train − test accuracy", colours(evidence))  # fmt: skip
    paired_points(right, [(a, accuracy(evidence, a)) for a in REGULARIZATION_ARMS],
                  "test accuracy", colours(evidence))  # fmt: skip
    return fig


# --- 7. small batches (at a fixed number of steps, or of examples) -----------------------------


def assess_small_batch(evidence: Evidence) -> Assessment:
    """BN vs group norm across batch sizes; the budget (steps or examples) is read from the runs,
    so the same rule decides small_batch and small_batch_examples."""
    sizes = [int(b) for b in evidence.values(BATCH)]
    small, large = {BATCH: min(sizes)}, {BATCH: max(sizes)}
    drops = {arm: _minus(accuracy(evidence, arm, large), accuracy(evidence, arm, small))
             for arm in evidence.tree.arms}  # fmt: skip
    findings = [
        finding(f"BN loses more from batch {max(sizes)} to {min(sizes)}",
                "accuracy drop (large − small batch), BN − group norm",
                per_seed(_minus(drops["batch"], drops["group"])), 0.0, "above"),
        finding(f"group norm better at batch {min(sizes)}",
                f"test accuracy at batch {min(sizes)}, group norm − BN",
                differences(evidence, "final_test_metric", "group", "batch", small), 0.0, "above"),
    ]  # fmt: skip
    sentences = [f"Every run has {batch_budget(evidence, sizes)}; batch sizes {sizes}."]
    for arm in evidence.tree.arms:
        means = [fmt(mean_of(accuracy(evidence, arm, {BATCH: b}))) for b in sizes]
        sentences.append(f"{arm} norm: test accuracy {' → '.join(means)} (batch {sizes}).")
    return Assessment(findings, sentences)


def batch_budget(evidence: Evidence, sizes: list[int]) -> str:
    """What the runs hold fixed across batch sizes, from their step counts: "the same number of
    steps (300)" or "the same number of examples (4,320: 2,160 steps at batch 2 … 68 at 64)"."""
    steps = {b: sorted({int(t) for t in evidence.where(None, {BATCH: b})["total_steps"].dropna()})
             for b in sizes}  # fmt: skip
    counts = sorted({n for found in steps.values() for n in found})
    if len(counts) == 1:
        return f"the same number of steps ({counts[0]:,})"
    examples = sorted({b * n for b, found in steps.items() for n in found})
    span = f"{examples[0]:,}" if len(examples) == 1 else f"{examples[0]:,}–{examples[-1]:,}"
    ends = [f"{', '.join(f'{n:,}' for n in steps[b])} steps at batch {b}"
            for b in (min(sizes), max(sizes))]  # fmt: skip
    return f"the same number of examples ({span}: {' … '.join(ends)})"


def draw_small_batch(evidence: Evidence) -> Figure:
    sizes = [int(b) for b in evidence.values(BATCH)]
    budget = batch_budget(evidence, sizes).split(" (")[0].removeprefix("the same ")
    fig, (ax,) = figure(1, f"accuracy against batch size at a fixed {budget}", width=6.0)
    by_x(ax, evidence, lambda arm, b: accuracy(evidence, arm, {BATCH: b}),
         evidence.values(BATCH), list(evidence.tree.arms), log_x=True)  # fmt: skip
    ax.set_xlabel("batch size")
    ax.set_ylabel("final test accuracy")
    return fig


# --- 8. placement -------------------------------------------------------------------------------


def assess_placement(evidence: Evidence) -> Assessment:
    sigmoid, relu = {ACTIVATION: "sigmoid"}, {ACTIVATION: "relu"}
    before_better = finding("sigmoid: before is better",
                            "test accuracy, BN before − after the sigmoid",
                            differences(evidence, "final_test_metric", "before", "after", sigmoid),
                            0.0, "above")  # fmt: skip
    relu_values = differences(evidence, "final_test_metric", "before", "after", relu)
    test = equivalence(relu_values, PLACEMENT_MARGIN)
    negligible = Finding(
        f"ReLU: negligible (TOST, margin ±{PLACEMENT_MARGIN:g})",
        "test accuracy, BN before − after the ReLU (90% CI)",
        test.interval90,
        PLACEMENT_MARGIN,
        f"supported if the 90% CI lies within ±{PLACEMENT_MARGIN:g} (TOST at 5%); not "
        f"supported if the 95% CI lies outside ±{PLACEMENT_MARGIN:g}; otherwise inconclusive",
        test.verdict,
        p_value=test.p_value,
    )
    sentences = []
    for words, cell in (("sigmoid", sigmoid), ("ReLU", relu)):
        means = {arm: fmt(mean_of(accuracy(evidence, arm, cell))) for arm in ("before", "after")}
        sentences.append(f"{words}: test accuracy {means['before']} before vs "
                         f"{means['after']} after the activation.")  # fmt: skip
    if test.p_value is not None:
        sentences.append(f"TOST p-value (ReLU): {test.p_value:.3f}.")
    return Assessment([before_better, negligible], sentences)


def draw_placement(evidence: Evidence) -> Figure:
    fig, axes = figure(2, "BN before vs after the activation: test accuracy")
    for ax, activation in zip(axes, ("sigmoid", "relu"), strict=True):
        cell = {ACTIVATION: activation}
        paired_points(ax, [(arm, accuracy(evidence, arm, cell)) for arm in ("before", "after")],
                      f"test accuracy ({activation})", colours(evidence))  # fmt: skip
    return fig


# --- 11. train/inference discrepancy ------------------------------------------------------------


def inference_gaps(evidence: Evidence, cell: Cell) -> dict[int, float]:
    """Seed -> validation accuracy in training mode − in inference mode (moving statistics)."""
    train = evidence.by_seed("final.val_train_mode_accuracy", "bn", cell)
    return _minus(train, evidence.by_seed("final_val_metric", "bn", cell))


def _averaged(evidence: Evidence, key: str, value: float, other: str) -> dict[int, float]:
    """Seed -> gap at `key` = value, averaged over the values of the `other` grid key."""
    others = evidence.values(other) or [None]
    table: dict[int, list[float]] = {}
    for o in others:
        cell = {key: value} if o is None else {key: value, other: o}
        for seed, gap in inference_gaps(evidence, cell).items():
            table.setdefault(seed, []).append(gap)
    return {s: float(np.mean(v)) for s, v in table.items() if len(v) == len(others)}


def assess_train_inference(evidence: Evidence) -> Assessment:
    momenta = [float(m) for m in evidence.values(MOMENTUM)]
    high = _averaged(evidence, MOMENTUM, max(momenta), BATCH)
    low = _averaged(evidence, MOMENTUM, min(momenta), BATCH)
    findings = [finding(f"grows with momentum ({min(momenta):g} → {max(momenta):g})",
                        "val. accuracy, training − inference mode, high − low momentum",
                        per_seed(_minus(high, low)), 0.0, "above")]  # fmt: skip
    sizes = [int(b) for b in evidence.values(BATCH)]
    if len(sizes) > 1:
        small = _averaged(evidence, BATCH, min(sizes), MOMENTUM)
        large = _averaged(evidence, BATCH, max(sizes), MOMENTUM)
        findings.append(finding(f"grows at small batches ({max(sizes)} → {min(sizes)})",
                                "val. accuracy, training − inference mode, small − large batch",
                                per_seed(_minus(small, large)), 0.0, "above"))  # fmt: skip
    sentences = [f"momentum {m:g}: mean gap {fmt(mean_of(_averaged(evidence, MOMENTUM, m, BATCH)))}"
                 " (training-mode minus inference-mode validation accuracy)."
                 for m in momenta]  # fmt: skip
    return Assessment(findings, sentences)


def draw_train_inference(evidence: Evidence) -> Figure:
    fig, (ax,) = figure(1, "train/inference gap against BN momentum", width=6.0)
    label = {"bn": "BN (mean over batch sizes)"}
    by_x(ax, evidence, lambda arm, m: _averaged(evidence, MOMENTUM, m, BATCH),
         evidence.values(MOMENTUM), ["bn"], labels=label)  # fmt: skip
    ax.set_xlabel("BN momentum")
    ax.set_ylabel("val. accuracy: training − inference mode")
    return fig


# --- 12. dropout before BN ----------------------------------------------------------------------

DROPOUT_ARMS = ("dropout_before_bn", "dropout_after_bn")


def fed_layers(evidence: Evidence) -> list[str]:
    """The BN layers that dropout feeds in the dropout_before_bn arm (its variance_shift rows)."""
    rows = evidence.diagnostics("variance_shift")
    if rows.empty:
        return []
    fed = rows[(rows["arm"] == DROPOUT_ARMS[0]) & (rows["fed_by_dropout"].astype(str) == "True")]
    return sorted({str(name) for name in fed["layer"]})


def variance_shifts(evidence: Evidence, arm: str, layers: list[str]) -> dict[int, float]:
    """Seed -> ln Var(dropout on) / Var(dropout off) of the `layers`' inputs at the last
    recorded step, averaged over the layers (the recorder's ratio is already a geometric mean
    over units)."""
    rows = evidence.diagnostics("variance_shift")
    if rows.empty or not layers:
        return {}
    rows = rows[(rows["arm"] == arm) & rows["layer"].isin(layers)]
    out = {}
    for seed, part in rows.groupby("seed"):
        last = part[part["step"] == part["step"].max()]
        ratios = last["variance_ratio"].astype(float)
        if len(last) == len(layers) and bool((ratios > 0).all()):
            out[int(seed)] = float(np.mean(np.log(ratios)))
    return out


def assess_dropout_order(evidence: Evidence) -> Assessment:
    values = differences(evidence, "final_test_metric", "dropout_after_bn", "dropout_before_bn")
    layers = fed_layers(evidence)
    shifts = {arm: variance_shifts(evidence, arm, layers) for arm in DROPOUT_ARMS}
    sizes = {arm: {s: abs(v) for s, v in shifts[arm].items()} for arm in DROPOUT_ARMS}
    where = ", ".join(layers) or "the BN fed by dropout"
    findings = [
        finding("", "test accuracy, dropout after every BN − dropout feeding BN",
                values, 0.0, "above"),
        finding("variance shift (Li et al.'s mechanism)",
                f"|ln Var(dropout on) / Var(dropout off)| of the input of {where} at the end, "
                "dropout feeding BN − dropout after every BN",
                per_seed(_minus(sizes[DROPOUT_ARMS[0]], sizes[DROPOUT_ARMS[1]])), 0.0, "above"),
    ]  # fmt: skip
    sentences = []
    for arm in DROPOUT_ARMS:
        train_mode = mean_of(evidence.by_seed("final.val_train_mode_accuracy", arm))
        inference = mean_of(evidence.by_seed("final_val_metric", arm))
        sentences.append(f"{arm}: test accuracy {fmt(mean_of(accuracy(evidence, arm)))}; "
                         f"validation accuracy {fmt(train_mode)} in training mode vs "
                         f"{fmt(inference)} in inference mode.")  # fmt: skip
    if layers:
        ratios = {arm: fmt(float(np.exp(mean_of(shifts[arm]))), 3) for arm in DROPOUT_ARMS}
        sentences.append(
            f"Variance shift of {where} at the end (Var of its input with dropout on / off, "
            "every BN on its moving statistics; geometric mean over units and seeds): "
            f"{ratios[DROPOUT_ARMS[0]]} when dropout feeds it, {ratios[DROPOUT_ARMS[1]]} with "
            "dropout after every BN."
        )
    else:
        sentences.append("No variance_shift diagnostic names a BN layer fed by dropout.")
    return Assessment(findings, sentences)


def draw_dropout_order(evidence: Evidence) -> Figure:
    fig, (left, right) = figure(2, "dropout before vs after batch norm")
    palette = colours(evidence)
    paired_points(left, [(a, accuracy(evidence, a)) for a in DROPOUT_ARMS], "test accuracy",
                  palette)  # fmt: skip
    layers, rows = fed_layers(evidence), evidence.diagnostics("variance_shift")
    for arm in DROPOUT_ARMS:
        mine = rows[(rows["arm"] == arm) & rows["layer"].isin(layers)] if layers else rows[:0]
        if mine.empty:
            continue
        wide = mine.pivot_table(index="step", columns="seed", values="variance_ratio")
        right.plot(wide.index, wide.to_numpy(), color=palette[arm], alpha=0.35, lw=0.8)
        mean = np.exp(np.log(wide).mean(axis=1))
        right.plot(mean.index, mean.to_numpy(), color=palette[arm], lw=2, label=arm)
    right.axhline(1.0, color="0.4", ls=":", lw=1)
    where = ", ".join(layers) or "BN"
    right.set(yscale="log", xlabel="step", ylabel="Var(dropout on) / Var(dropout off)")
    right.set_title(f"variance shift of the {where} input\n(thin: seeds; thick: geometric mean)",
                    fontsize=9)  # fmt: skip
    right.legend(fontsize=7, frameon=False)
    right.grid(alpha=0.25)
    return fig


# --- 14. ghost batch norm -----------------------------------------------------------------------


def assess_ghost_batch(evidence: Evidence) -> Assessment:
    values = differences(evidence, "final_test_metric", "ghost_bn", "bn")
    findings = [finding("", "test accuracy, ghost BN − BN", values, 0.0, "above")]
    sentences = [f"{arm}: test accuracy {fmt(mean_of(accuracy(evidence, arm)))}."
                 for arm in ("bn", "ghost_bn")]  # fmt: skip
    return Assessment(findings, sentences)


def draw_ghost_batch(evidence: Evidence) -> Figure:
    fig, (ax,) = figure(1, "ghost batch norm at a large batch", width=5.0)
    paired_points(ax, [(a, accuracy(evidence, a)) for a in ("bn", "ghost_bn")], "test accuracy",
                  colours(evidence))  # fmt: skip
    return fig
