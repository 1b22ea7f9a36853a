"""bnbench against a plain-Keras script of the Ioffe & Szegedy (2015) MNIST network.

Shows: a hand-written Keras script of the paper's network (784 inputs, 3 dense layers of 100
sigmoid units, BN before each sigmoid with the dense layers' bias dropped, or no BN with biased
dense layers; softmax head; every kernel N(0, 0.1²), biases zero; SGD at lr 0.5 as
configs/mlp_mnist.yaml ships it; batch 60) and `bnbench train` configured to match give the same
test curves for the same seed: per arm and seed, the largest gap in test accuracy and test loss
over all evaluation points, and across seeds a paired t-test on the final accuracies.

The data are real digits that need no download: scikit-learn's bundled 8×8 digits, each pixel
repeated 3×3 and padded by 2 to 28×28 uint8 images (0..255, MNIST's shape and range), split once
into 1,437 training and 360 test images, written to an .npz that both sides read.

Expected: the curves are bit-identical (every |Δ| is 0, on JAX and on TensorFlow): same seed,
same initializer draws in the same order, same batches, same float32 arithmetic. Exit status 1
when any curve differs by 5e-4 or more.

Runtime: ~3 minutes for the defaults (2,000 steps × 2 arms × 3 seeds on both sides, 2-core CPU,
JAX or TensorFlow); much of it is the six `bnbench train` processes starting up.

    python scripts/keras_reference.py [--steps 2000] [--seeds 0 1 2] [--backend jax|tensorflow]
                                      [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
ARMS = ("no_bn", "bn")
BATCH = 60
EVAL_BATCH = 256  # what bnbench evaluates with: max(256, batch size)


def make_digits_npz(path: Path) -> Path:
    """Write scikit-learn's 8×8 digits as MNIST-shaped uint8 images to `path`; a fixed split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 -> 0..255
    images = np.stack([np.kron(image, np.ones((3, 3), np.uint8)) for image in images])
    images = np.pad(images, ((0, 0), (2, 2), (2, 2)))  # 24×24 -> 28×28, like MNIST's margin
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(images))
    test, train = order[:360], order[360:]
    np.savez(
        path, x_train=images[train], y_train=labels[train], x_test=images[test], y_test=labels[test]
    )
    return path


# --- the plain Keras side: what a user would write, no bnbench ---------------------------------


def train_plain_keras(
    npz: Path, bn: bool, seed: int, steps: int, eval_every: int, learning_rate: float
) -> list[tuple[int, float, float]]:
    """Train the paper's network with plain Keras; (step, test loss, test accuracy) per point."""
    import keras

    with np.load(npz) as data:
        x_train = data["x_train"].reshape(len(data["x_train"]), -1).astype("float32") / 255.0
        x_test = data["x_test"].reshape(len(data["x_test"]), -1).astype("float32") / 255.0
        y_train, y_test = data["y_train"], data["y_test"]

    keras.utils.clear_session()
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input(shape=(784,))])
    for _ in range(3):
        # A fresh initializer per layer: an unseeded Keras 3 initializer draws its seed once, when
        # it is made, so one object shared by the layers would give layers 2 and 3 equal kernels.
        init = keras.initializers.RandomNormal(stddev=0.1)
        if bn:  # BN subtracts each unit's batch mean, which cancels a bias: beta replaces it
            model.add(keras.layers.Dense(100, use_bias=False, kernel_initializer=init))
            model.add(keras.layers.BatchNormalization())  # momentum 0.99, epsilon 1e-3
            model.add(keras.layers.Activation("sigmoid"))
        else:
            model.add(keras.layers.Dense(100, activation="sigmoid", kernel_initializer=init))
    init = keras.initializers.RandomNormal(stddev=0.1)
    model.add(keras.layers.Dense(10, activation="softmax", kernel_initializer=init))
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )

    # Every batch full: one fresh permutation per pass, running on across pass boundaries.
    rng = np.random.default_rng(seed)
    n = len(x_train)
    passes = [rng.permutation(n) for _ in range(math.ceil(steps * BATCH / n))]
    order = np.concatenate(passes)[: steps * BATCH]

    curve, done = [], 0
    for stop in [*range(eval_every, steps, eval_every), steps]:
        idx = order[done * BATCH : stop * BATCH]
        model.fit(x_train[idx], y_train[idx], batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        loss, accuracy = model.evaluate(x_test, y_test, batch_size=EVAL_BATCH, verbose=0)
        curve.append((stop, float(loss), float(accuracy)))
        done = stop
    return curve


# --- the bnbench side --------------------------------------------------------------------------


def bnbench_spec(
    npz: Path, bn: bool, seed: int, steps: int, eval_every: int, learning_rate: float, backend: str
) -> dict[str, object]:
    """The run spec that describes the plain script's run."""
    init = {"kind": "random_normal", "stddev": 0.1}
    return {
        "name": "bn" if bn else "no_bn",
        "seed": seed,
        "backend": backend,
        "dataset": {
            "name": "npz",
            "path": str(npz),
            "validation_split": "test",
            "normalize": "scale",
            "flatten": True,
        },
        "model": {
            "activation": "sigmoid",
            "initializer": init,  # hidden layers and head alike
            "norm": {"kind": "batch", "placement": "before_activation"} if bn else {"kind": "none"},
            "blocks": [{"type": "dense", "units": 100} for _ in range(3)],
        },
        "training": {
            "optimizer": "sgd",
            "learning_rate": learning_rate,
            "batch_size": BATCH,
            "steps": steps,
            "eval_every": eval_every,
        },
        "evaluation": {"train_mode_metrics": False},
    }


def bnbench_cli(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "bnbench", *args], capture_output=True, text=True, cwd=ROOT
    )
    if result.returncode:
        sys.exit(f"bnbench {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def train_bnbench(spec: dict[str, object], work: Path) -> list[tuple[int, float, float]]:
    """Run `bnbench train` on `spec`; (step, test loss, test accuracy) from its history.csv."""
    name = f"{spec['name']}_seed{spec['seed']}"
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    run_dir = work / "bnbench" / name
    bnbench_cli("train", str(path), "--out", str(run_dir), "-q", "--no-save-model", "--overwrite")
    with (run_dir / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    # validation_split: test, so the val_ columns are the test split.
    return [(int(r["step"]), float(r["val_loss"]), float(r["val_accuracy"])) for r in rows]


# --- the comparison ----------------------------------------------------------------------------


def compare(
    curves: dict[tuple[str, int, str], list[tuple[int, float, float]]], seeds: list[int]
) -> bool:
    """Print the per-run table and the paired test; True when every curve agrees to 3 decimals."""
    from scipy import stats

    print(
        f"\n{'arm':6} {'seed':>4}  {'final acc keras':>15} {'bnbench':>9}  "
        f"{'max|Δacc|':>10} {'max|Δloss|':>10}  identical"
    )
    all_agree = True
    for arm in ARMS:
        finals = {"keras": [], "bnbench": []}
        for seed in seeds:
            plain = np.array(curves[arm, seed, "keras"])
            ours = np.array(curves[arm, seed, "bnbench"])
            if plain.shape != ours.shape or not np.array_equal(plain[:, 0], ours[:, 0]):
                sys.exit(f"{arm} seed {seed}: the evaluation steps differ")
            d_loss = float(np.max(np.abs(plain[:, 1] - ours[:, 1])))
            d_acc = float(np.max(np.abs(plain[:, 2] - ours[:, 2])))
            all_agree &= d_acc < 5e-4 and d_loss < 5e-4
            finals["keras"].append(plain[-1, 2])
            finals["bnbench"].append(ours[-1, 2])
            same = "yes" if np.array_equal(plain, ours) else "no"
            print(
                f"{arm:6} {seed:>4}  {plain[-1, 2]:>15.4f} {ours[-1, 2]:>9.4f}  "
                f"{d_acc:>10.2e} {d_loss:>10.2e}  {same}"
            )
        a, b = np.array(finals["keras"]), np.array(finals["bnbench"])
        if np.array_equal(a, b):
            verdict = "final accuracies identical in every seed (paired t undefined: no variance)"
        elif len(seeds) < 2:
            verdict = "one seed: no paired test"
        else:
            t = stats.ttest_rel(a, b)
            verdict = f"paired t-test on final accuracy: t = {t.statistic:.3g}, p = {t.pvalue:.3g}"
        print(f"  {arm}: mean final acc keras {a.mean():.4f}, bnbench {b.mean():.4f}; {verdict}")
    for side in ("keras", "bnbench"):
        gain = [curves["bn", s, side][-1][2] - curves["no_bn", s, side][-1][2] for s in seeds]
        print(
            f"  BN − no BN final test accuracy ({side}): {np.mean(gain):+.4f} "
            f"(per seed {', '.join(f'{g:+.4f}' for g in gain)})"
        )
    print("curves agree to 3 decimals (every point, every run):", "yes" if all_agree else "NO")
    return all_agree


def write_curves(
    path: Path, curves: dict[tuple[str, int, str], list[tuple[int, float, float]]], seeds: list[int]
) -> None:
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(
            [
                "arm",
                "seed",
                "step",
                "keras_loss",
                "bnbench_loss",
                "keras_accuracy",
                "bnbench_accuracy",
            ]
        )
        for arm in ARMS:
            for seed in seeds:
                pairs = zip(curves[arm, seed, "keras"], curves[arm, seed, "bnbench"], strict=True)
                for (step, loss, acc), (_, loss_b, acc_b) in pairs:
                    out.writerow(
                        [arm, seed, step, repr(loss), repr(loss_b), repr(acc), repr(acc_b)]
                    )


def import_keras_quietly() -> None:
    """Import Keras and TensorFlow with TensorFlow's native start-up log hidden.

    Keras loads TensorFlow even on JAX (`set_random_seed` seeds it too, tf.data feeds `fit`), and
    its libraries write to file descriptor 2 before TF_CPP_MIN_LOG_LEVEL takes effect.
    """
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        with contextlib.suppress(ImportError):
            import tensorflow  # noqa: F401
        import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--backend", choices=["jax", "tensorflow"], default="jax")
    parser.add_argument(
        "--learning-rate", type=float, default=None, help="default: configs/mlp_mnist.yaml's (0.5)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="keep the .npz, specs, run directories and curves.csv here",
    )
    args = parser.parse_args()
    shipped = yaml.safe_load((ROOT / "configs" / "mlp_mnist.yaml").read_text())
    lr = args.learning_rate or float(shipped["training"]["learning_rate"])

    # Keras reads its backend once, at import: set it before the plain side imports Keras.
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import_keras_quietly()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        npz = make_digits_npz(work / "digits28.npz")
        print(
            f"{args.backend}, {args.steps} steps at batch {BATCH}, SGD lr {lr}, test accuracy "
            f"every {args.eval_every} steps, seeds {args.seeds}; data {npz}"
        )
        first = bnbench_spec(
            npz, True, args.seeds[0], args.steps, args.eval_every, lr, args.backend
        )
        (work / "check.yaml").write_text(yaml.safe_dump(first, sort_keys=False))
        print(bnbench_cli("validate", str(work / "check.yaml")).rstrip())

        curves = {}
        for arm in ARMS:
            for seed in args.seeds:
                run = (args.steps, args.eval_every, lr)
                curves[arm, seed, "keras"] = train_plain_keras(npz, arm == "bn", seed, *run)
                spec = bnbench_spec(npz, arm == "bn", seed, *run, args.backend)
                curves[arm, seed, "bnbench"] = train_bnbench(spec, work)
        agree = compare(curves, args.seeds)
        write_curves(work / "curves.csv", curves, args.seeds)
        if args.out:
            print(f"per-point curves: {work / 'curves.csv'}")
    sys.exit(0 if agree else 1)


if __name__ == "__main__":
    main()
