"""The loss-landscape figure: raw features make a narrow valley, standardized a round bowl."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.image import imread

from bnbench.demos.landscape import LandscapeResult, draw_landscape
from bnbench.errors import SpecError


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> LandscapeResult:
    return draw_landscape(tmp_path_factory.mktemp("landscape") / "figures" / "landscape.png")


def test_writes_a_png(result: LandscapeResult) -> None:
    assert result.path.name == "landscape.png"
    image = imread(result.path)
    assert image.shape[1] == 1300  # 10 in at 130 dpi
    assert image[..., :3].std() > 0.01


def test_raw_features_are_badly_conditioned(result: LandscapeResult) -> None:
    # Var(B) / Var(A) = (199 / 9)^2 ~ 490 for A ~ U(1, 10), B ~ U(1, 200).
    assert result.raw.condition_number > 100
    assert result.standardized.condition_number < 2
    assert result.raw.optimal_loss == pytest.approx(result.standardized.optimal_loss)


def test_standardized_reaches_the_target_first(result: LandscapeResult) -> None:
    assert result.standardized.steps_to_target is not None
    assert result.standardized.steps_to_target < 50
    assert result.raw.steps_to_target is None  # not in the default 100 steps
    assert result.raw.final_loss > 100 * result.raw.optimal_loss
    lines = result.describe()
    assert len(lines) == 2 and "not within 1%" in lines[0]


def test_raw_gets_there_with_enough_steps(tmp_path: Path) -> None:
    result = draw_landscape(tmp_path / "long.svg", steps=3000)
    assert result.path.read_bytes().startswith(b"<?xml")
    assert result.raw.steps_to_target is not None
    assert result.standardized.steps_to_target is not None
    assert result.standardized.steps_to_target < result.raw.steps_to_target / 10


def test_format_from_argument_or_suffix(tmp_path: Path) -> None:
    assert draw_landscape(tmp_path / "a", fmt="pdf", steps=5).path == tmp_path / "a.pdf"
    assert (tmp_path / "a.pdf").read_bytes().startswith(b"%PDF")
    assert draw_landscape(tmp_path / "b", steps=5).path == tmp_path / "b.png"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_samples": 1}, "num_samples must be >= 2, got 1"),
        ({"steps": 0}, "steps must be >= 1, got 0"),
        ({"lr_fraction": 1.0}, r"lr_fraction must be in \(0, 1\), got 1.0"),
        ({"fmt": "jpeg"}, "unknown figure format 'jpeg'"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        draw_landscape(tmp_path / "x", **kwargs)  # type: ignore[arg-type]


def test_suffix_and_format_must_agree(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not match"):
        draw_landscape(tmp_path / "x.svg", fmt="png")
    with pytest.raises(SpecError, match="'gif'"):
        draw_landscape(tmp_path / "x.gif")
