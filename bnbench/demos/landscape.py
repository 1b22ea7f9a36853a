"""Why normalizing inputs helps: the MSE loss surface of a linear model, raw vs standardized.

On `two_scale` data (feature B spans a range ~20x wider than A) the loss of y = w1*A + w2*B + b
is a long narrow valley: the curvature along w2 is ~500x that along w1. Gradient descent must use
a step small enough for the steep direction and then crawls along the flat one. Standardizing
the features makes the valley round, so the same budget of steps reaches the optimum. This is
the argument of LeCun et al., "Efficient BackProp" (1998), that Batch Normalization (Ioffe &
Szegedy, 2015) carries to hidden layers.

The bias is profiled out in closed form (b*(w) = mean(y) - w . mean(x)), which is the same as
centring x and y, so the two panels differ only in feature scale, the part BN's division by the
batch standard deviation fixes. The loss is exactly quadratic, so everything is computed from
the 2x2 Hessian; no training library is involved.

The claim input_scaling (`bnbench claims`) reads the same numbers from the data its runs trained
on: `training_split`, `conditioning` and `draw_surface`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bnbench.config.registries import FIGURE_FORMATS
from bnbench.config.schema import DatasetSpec
from bnbench.data.synthetic import two_scale
from bnbench.errors import SpecError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# Within 1% of the optimal loss: the optimum is the noise variance, so this is a tight target.
_TARGET_RATIO = 1.01


@dataclass(frozen=True)
class Descent:
    """Gradient descent on one parameterization of the loss.

    Attributes:
        condition_number: Largest over smallest eigenvalue of the Hessian.
        learning_rate: Step size used, `lr_fraction * 2 / L_max`.
        optimal_loss: Loss at the least-squares optimum (about the noise variance).
        final_loss: Loss after the last step.
        steps_to_target: First step whose loss is within 1% of the optimal loss, or None.
    """

    condition_number: float
    learning_rate: float
    optimal_loss: float
    final_loss: float
    steps_to_target: int | None


@dataclass(frozen=True)
class LandscapeResult:
    """What `draw_landscape` wrote and measured.

    Attributes:
        path: The figure file.
        steps: Gradient-descent steps taken on each surface.
        raw: Descent on the raw features.
        standardized: Descent on the standardized features.
    """

    path: Path
    steps: int
    raw: Descent
    standardized: Descent

    def describe(self) -> list[str]:
        """One human-readable line per surface, for the CLI to print."""
        lines = []
        for name, run in (("raw", self.raw), ("standardized", self.standardized)):
            reached = (
                f"within 1% of optimum after {run.steps_to_target} steps"
                if run.steps_to_target is not None
                else f"not within 1% of optimum after {self.steps} steps"
            )
            lines.append(
                f"{name:>12}: condition number {run.condition_number:,.1f}, "
                f"learning rate {run.learning_rate:.3g}, {reached}, "
                f"final loss {run.final_loss:.4g} (optimum {run.optimal_loss:.4g})"
            )
        return lines


@dataclass(frozen=True)
class Conditioning:
    """How well conditioned a linear model's MSE is on some data, raw and standardized.

    Attributes:
        raw: Condition number of the Hessian on the features as they are.
        standardized: The same on each feature divided by its standard deviation.
        target_variance: Variance of the target: the MSE of predicting its mean, so that an
            MSE of `v` is an R² of 1 - v / target_variance.
        examples: Examples the numbers come from.
    """

    raw: float
    standardized: float
    target_variance: float
    examples: int


@dataclass(frozen=True)
class Surface:
    """The exactly quadratic MSE of a linear model (bias profiled out) on one set of features."""

    covariance: np.ndarray  # Xc^T Xc / n; the Hessian of the loss is twice this
    optimum: np.ndarray
    optimal_loss: float

    def excess(self, weights: np.ndarray) -> np.ndarray:
        """Loss minus optimal loss at weights of shape (..., 2); exact, the loss is quadratic."""
        delta = weights - self.optimum
        excess: np.ndarray = np.einsum("...i,ij,...j->...", delta, self.covariance, delta)
        return excess

    def loss(self, weights: np.ndarray) -> np.ndarray:
        """Loss at weights of shape (..., 2)."""
        return self.optimal_loss + self.excess(weights)


def draw_landscape(
    out_path: Path,
    *,
    num_samples: int = 500,
    seed: int = 0,
    steps: int = 100,
    lr_fraction: float = 0.8,
    fmt: str | None = None,
) -> LandscapeResult:
    """Draw the loss surfaces and descent paths for raw vs standardized `two_scale` features.

    Both descents start from w = 0 (the model that predicts mean(y)) and take `steps` steps of
    size `lr_fraction * 2 / L_max`, where L_max is the top eigenvalue of that surface's Hessian:
    the largest step that is stable for it, scaled down to leave a margin.

    Args:
        out_path: Figure file to write; its parent directories are created.
        num_samples: Examples drawn from `two_scale`, at least 2.
        seed: Seed of the data.
        steps: Gradient-descent steps on each surface, at least 1. The default is enough for
            standardized features and far too few for raw ones, which is the point.
        lr_fraction: Step size as a fraction of the stability limit 2 / L_max, in (0, 1).
        fmt: One of png, svg, pdf. None takes it from the suffix of `out_path` (png if none).

    Returns:
        The path written and the numbers behind the figure.

    Raises:
        SpecError: (a ValueError) If an argument is out of range or the format is unknown.
    """
    if num_samples < 2:
        raise SpecError(f"num_samples must be >= 2, got {num_samples!r}")
    if steps < 1:
        raise SpecError(f"steps must be >= 1, got {steps!r}")
    if not 0.0 < lr_fraction < 1.0:
        raise SpecError(f"lr_fraction must be in (0, 1), got {lr_fraction!r}")
    path = _resolve_path(Path(out_path), fmt)

    x, y = two_scale(num_samples, seed)
    if np.any(x.std(axis=0) == 0):
        raise SpecError(f"features are constant for num_samples={num_samples}, seed={seed}")
    found = surfaces(x, y)
    results: dict[str, Descent] = {}
    paths: dict[str, np.ndarray] = {}
    for name, surface in found.items():
        results[name], paths[name] = descend(surface, steps, lr_fraction)
    _plot(path, found, paths, results, steps)
    return LandscapeResult(path, steps, results["raw"], results["standardized"])


def training_split(spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    """The training inputs and targets of a dataset spec, the inputs as the data holds them.

    `normalize` is set to none, whatever the spec says: these are the raw features that
    `conditioning` compares with their standardized version. Nothing is downloaded.

    Raises:
        SpecError: the data cannot be read (see `bnbench.data.datasets.load_dataset`).
    """
    from bnbench.data.datasets import load_dataset

    data = load_dataset(spec.model_copy(update={"normalize": "none"}), download=False)
    return data.x_train, data.y_train


def surfaces(x: np.ndarray, y: np.ndarray) -> dict[str, Surface]:
    """The loss surfaces of a linear model on the raw and on the standardized features.

    Args:
        x: Inputs, one row per example (flattened beyond the first axis).
        y: Targets, one value per example.

    Returns:
        "raw" and "standardized" surfaces (features centred, bias profiled out).

    Raises:
        SpecError: a feature is constant, so it cannot be standardized.
    """
    features = x.reshape(len(x), -1).astype(np.float64)
    centred = features - features.mean(axis=0)
    target = y.reshape(len(y), -1)[:, 0].astype(np.float64)
    target = target - target.mean()
    std = centred.std(axis=0)
    if np.any(std == 0):
        raise SpecError("a feature is constant: it cannot be standardized")
    return {"raw": _surface(centred, target), "standardized": _surface(centred / std, target)}


def conditioning(x: np.ndarray, y: np.ndarray) -> Conditioning:
    """Condition numbers of the raw and standardized surfaces of (x, y), and Var(y)."""
    found = surfaces(x, y)
    numbers = {name: _condition_number(surface) for name, surface in found.items()}
    variance = float(np.var(y.reshape(len(y), -1)[:, 0].astype(np.float64)))
    return Conditioning(numbers["raw"], numbers["standardized"], variance, len(x))


def _condition_number(surface: Surface) -> float:
    eigenvalues = np.linalg.eigvalsh(surface.covariance)
    return float(eigenvalues[-1] / eigenvalues[0])


def _resolve_path(out_path: Path, fmt: str | None) -> Path:
    suffix = out_path.suffix.lower().lstrip(".")
    chosen = fmt if fmt is not None else (suffix or "png")
    if chosen not in FIGURE_FORMATS:
        raise SpecError(
            f"unknown figure format {chosen!r}: expected one of {', '.join(FIGURE_FORMATS)}"
        )
    if not suffix:
        return out_path.with_suffix(f".{chosen}")
    if suffix != chosen:
        raise SpecError(f"format {chosen!r} does not match the suffix of {str(out_path)!r}")
    return out_path


def _surface(features: np.ndarray, target: np.ndarray) -> Surface:
    optimum, *_ = np.linalg.lstsq(features, target, rcond=None)
    residual = target - features @ optimum
    return Surface(features.T @ features / len(target), optimum, float(np.mean(residual**2)))


def descend(surface: Surface, steps: int, lr_fraction: float) -> tuple[Descent, np.ndarray]:
    """Gradient descent from w = 0 at `lr_fraction` of the surface's stability limit 2 / L_max.

    Returns:
        What it reached, and the weights after each step (the first row is the start).
    """
    hessian = 2.0 * surface.covariance
    eigenvalues = np.linalg.eigvalsh(hessian)
    learning_rate = lr_fraction * 2.0 / eigenvalues[-1]
    weights = np.zeros((steps + 1, 2))
    for step in range(steps):
        gradient = hessian @ (weights[step] - surface.optimum)
        weights[step + 1] = weights[step] - learning_rate * gradient
    losses = surface.loss(weights)
    reached = np.flatnonzero(losses <= _TARGET_RATIO * surface.optimal_loss)
    descent = Descent(
        condition_number=float(eigenvalues[-1] / eigenvalues[0]),
        learning_rate=float(learning_rate),
        optimal_loss=surface.optimal_loss,
        final_loss=float(losses[-1]),
        steps_to_target=int(reached[0]) if reached.size else None,
    )
    return descent, weights


_COLOURS = {"raw": "tab:red", "standardized": "tab:blue"}


def draw_surface(
    ax: Axes, name: str, surface: Surface, weights: np.ndarray, result: Descent, steps: int
) -> None:
    """One surface's contours at log-spaced loss levels, with the descent path on it.

    Args:
        ax: The panel.
        name: "raw" or "standardized".
        surface: The surface (`surfaces`).
        weights: The descent path (`descend`).
        result: What the descent reached.
        steps: Its steps, for the title.
    """
    from matplotlib.colors import LogNorm

    w1, w2 = _square_window(np.vstack([weights, surface.optimum]))
    grid = np.stack(np.meshgrid(w1, w2), axis=-1)
    excess = surface.excess(grid)
    levels = np.geomspace(max(excess.max() * 1e-6, 1e-6), excess.max(), 13)
    ax.contour(w1, w2, excess, levels=levels, norm=LogNorm(), cmap="viridis", linewidths=0.9)
    ax.plot(weights[:, 0], weights[:, 1], "-", color=_COLOURS[name], lw=1.0, marker=".", ms=3)
    ax.plot(*weights[0], "o", color="black", ms=6, label="start (w = 0)")
    ax.plot(*surface.optimum, "*", color="gold", mec="black", ms=13, label="optimum")
    ax.set_aspect("equal")
    scaled = "" if name == "raw" else "standardized "
    ax.set_xlabel(f"w1 (weight on {scaled}feature A)")
    ax.set_ylabel(f"w2 (weight on {scaled}feature B)")
    ax.set_title(
        f"{name} features: condition number {result.condition_number:,.1f}\n"
        f"{steps} steps at learning rate {result.learning_rate:.2g}",
        fontsize=10,
    )
    ax.legend(loc="best", fontsize=8)


def _plot(
    path: Path,
    surfaces: dict[str, Surface],
    paths: dict[str, np.ndarray],
    results: dict[str, Descent],
    steps: int,
) -> None:
    from bnbench.analysis.figures import DPI, plt, save_figure

    fig, axes = plt.subplots(1, 3, figsize=(10, 3.9), dpi=DPI, layout="constrained")
    for ax, (name, surface) in zip(axes[:2], surfaces.items(), strict=True):
        draw_surface(ax, name, surface, paths[name], results[name], steps)

    ax = axes[2]
    for name, surface in surfaces.items():
        excess = surface.excess(paths[name])
        reached = results[name].steps_to_target
        note = f"1% of optimum at step {reached}" if reached is not None else "1% not reached"
        ax.plot(excess, color=_COLOURS[name], label=f"{name} ({note})")
    # Both parameterizations describe the same least-squares problem: one optimal loss.
    tolerance = (_TARGET_RATIO - 1.0) * results["raw"].optimal_loss
    ax.axhline(tolerance, color="grey", ls=":", lw=1, label="1% of optimal loss")
    ax.set_yscale("log")
    ax.set_ylim(bottom=tolerance * 1e-3)
    ax.set_xlabel("gradient-descent step")
    ax.set_ylabel("loss − optimal loss (MSE, log scale)")
    ax.set_title("convergence from the same start", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    fig.suptitle(
        "MSE of y = w1·A + w2·B + b on two_scale data (bias fitted in closed form; "
        "contours at log-spaced loss levels)",
        fontsize=11,
    )
    save_figure(fig, path, path.suffix.lstrip(".").lower())


def _square_window(points: np.ndarray, num: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Equal-scale axes around the points, so a narrow valley looks narrow."""
    low, high = points.min(axis=0), points.max(axis=0)
    centre, half = (low + high) / 2, (high - low).max() / 2 * 1.15 + 1e-9
    return np.linspace(centre[0] - half, centre[0] + half, num), np.linspace(
        centre[1] - half, centre[1] + half, num
    )
