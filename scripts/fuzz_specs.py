"""Mutation fuzzer for spec loading: every way a spec can be wrong should end in a clean refusal.

Mutates every leaf of a valid run spec (configs/mlp_digits.yaml) and of an ablation
(configs/ablations/quickstart.yaml, with its base beside it) — wrong type, negative, zero, huge,
null, a list, an unknown sibling key, the key deleted — and adds hand-written hostile files
(alias bombs, deep nesting, non-UTF-8, tags, pipes and devices, a pickle payload). Each case
runs `bnbench validate` (run spec) or `bnbench plan` (ablation) in a subprocess with a timeout,
from an empty working folder, and is counted as one of:

    ok         exit 0
    refused    exit 2 with an 'error:' message of at most a few lines
    long       exit 2, but a message longer than MAX_MESSAGE_LINES lines
    traceback  a Python traceback on the output
    hang       still running at the timeout
    failed     any other exit code
    wrote      (counted besides the outcome) a new file appeared in the working folder

    python scripts/fuzz_specs.py [--count 300] [--seed 0] [--timeout 60] [--only plan]

A validate subprocess imports Keras (~5 s); plan cases take well under a second.
"""

from __future__ import annotations

import argparse
import copy
import os
import pickle
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
RUN_SPEC = ROOT / "configs" / "mlp_digits.yaml"
ABLATION = ROOT / "configs" / "ablations" / "quickstart.yaml"
MAX_MESSAGE_LINES = 25
HUGE = 10**12
OUTCOMES = ("ok", "refused", "long", "traceback", "hang", "failed")

# Where a case puts its files: the ablation's `base: ../mlp_digits.yaml` resolves beside it.
SPEC_DIR = "configs"
ABLATION_DIR = "configs/ablations"

# A file's content: bytes, or a special kind made when the case is laid out.
Content = bytes | str
Maker = Callable[[Path], Content]


@dataclass(frozen=True)
class Case:
    """One input to try: the files to lay out, the command, and the spec it reads.

    Attributes:
        name: what was done, for the report.
        command: 'validate' or 'plan'.
        target: the spec's path relative to the case folder.
        files: relative path -> bytes, or a function of the case folder giving bytes or one of
            'fifo', 'dir', a '->target' symlink.
        args: more arguments after the spec.
    """

    name: str
    command: str
    target: str
    files: dict[str, Content | Maker] = field(default_factory=dict)
    args: tuple[str, ...] = ()


@dataclass
class Outcome:
    case: Case
    kind: str
    wrote: list[str]
    message: str
    seconds: float


# --- mutating a valid spec --------------------------------------------------------------------


def leaves(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every scalar below `data` (and every empty collection), with its path."""
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from leaves(value, (*path, key))
    elif isinstance(data, list) and data:
        for index, value in enumerate(data):
            yield from leaves(value, (*path, index))
    else:
        yield path, data


def _wrong_type(value: Any) -> Any:
    if isinstance(value, bool):
        return "maybe"
    if isinstance(value, int | float):
        return "abc"
    if isinstance(value, str):
        return 12345
    return "abc"


def _negative(value: Any) -> Any:
    return -value if isinstance(value, int | float) and not isinstance(value, bool) else -1


# Each mutation maps (parent, key) to a change of the parent in place.
MUTATIONS: dict[str, Callable[[Any, Any], None]] = {
    "wrong_type": lambda parent, key: parent.__setitem__(key, _wrong_type(parent[key])),
    "negative": lambda parent, key: parent.__setitem__(key, _negative(parent[key])),
    "zero": lambda parent, key: parent.__setitem__(key, 0),
    "huge": lambda parent, key: parent.__setitem__(key, HUGE),
    "null": lambda parent, key: parent.__setitem__(key, None),
    "list": lambda parent, key: parent.__setitem__(key, [parent[key], parent[key]]),
    "unknown_sibling": lambda parent, key: (
        parent.__setitem__("surprise_key", 1) if isinstance(parent, dict) else parent.append(1)
    ),
    "deleted": lambda parent, key: parent.__delitem__(key),
}


def mutants(data: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every mutation of every leaf of `data`, named 'dotted.path:mutation'."""
    for path, _ in leaves(data):
        if not path:
            continue
        for name, mutate in MUTATIONS.items():
            out = copy.deepcopy(data)
            parent = out
            for part in path[:-1]:
                parent = parent[part]
            mutate(parent, path[-1])
            yield f"{'.'.join(map(str, path))}:{name}", out


def _dump(data: Any) -> bytes:
    return yaml.safe_dump(data, sort_keys=False).encode()


def _run_spec(backend: str | None) -> dict[str, Any]:
    """The valid run spec; `backend` pins its backend (in-process runs cannot switch)."""
    data: dict[str, Any] = yaml.safe_load(RUN_SPEC.read_text())
    if backend is not None:
        data["backend"] = backend
    return data


def mutation_cases(backend: str | None = None) -> list[Case]:
    """Cases from mutating the run spec (validate), the ablation (plan) and its base (plan)."""
    run_spec = _run_spec(backend)
    ablation = yaml.safe_load(ABLATION.read_text())
    base_text = RUN_SPEC.read_bytes()
    cases = [
        Case(
            f"run:{name}", "validate", f"{SPEC_DIR}/spec.yaml", {f"{SPEC_DIR}/spec.yaml": _dump(d)}
        )
        for name, d in mutants(run_spec)
    ]
    cases += [
        Case(
            f"ablation:{name}",
            "plan",
            f"{ABLATION_DIR}/ablation.yaml",
            {f"{ABLATION_DIR}/ablation.yaml": _dump(d), f"{SPEC_DIR}/mlp_digits.yaml": base_text},
        )
        for name, d in mutants(ablation)
    ]
    cases += [
        Case(
            f"ablation-base:{name}",
            "plan",
            f"{ABLATION_DIR}/ablation.yaml",
            {
                f"{ABLATION_DIR}/ablation.yaml": ABLATION.read_bytes(),
                f"{SPEC_DIR}/mlp_digits.yaml": _dump(d),
            },
        )
        for name, d in mutants(run_spec)
    ]
    return cases


# --- hand-written hostile files ---------------------------------------------------------------


def alias_bomb(levels: int = 8, width: int = 9) -> bytes:
    """'Billion laughs': each level lists the previous one `width` times (width**levels nodes)."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return ("\n".join(lines) + "\n").encode()


class _Touch:
    """A pickle whose loading creates the file `path` (as a malicious CIFAR batch would)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def cifar_payload(root: Path) -> bytes:
    return pickle.dumps({b"data": _Touch(root / "work" / "PWNED"), b"labels": []})


def _cifar_at(path: str, backend: str | None) -> bytes:
    data = _run_spec(backend)
    data["dataset"] = {"name": "cifar10", "path": path, "validation_split": 0.1}
    return _dump(data)


def _npz_at(path: str, backend: str | None) -> bytes:
    data = _run_spec(backend)
    data["dataset"] = {"name": "npz", "path": path, "validation_split": 0.1}
    return _dump(data)


def _cifar_folder_case(name: str, batch: Content | Maker, backend: str | None) -> Case:
    folder = f"{SPEC_DIR}/cifar/cifar-10-batches-py"
    files: dict[str, Content | Maker] = {
        f"{folder}/{n}": batch for n in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    }
    files[f"{SPEC_DIR}/spec.yaml"] = lambda root: _cifar_at(str(root / SPEC_DIR / "cifar"), backend)
    return Case(name, "validate", f"{SPEC_DIR}/spec.yaml", files)


def _ablation_with_base(name: str, base: str, base_content: Content | Maker | None) -> Case:
    text = ABLATION.read_text().replace("base: ../mlp_digits.yaml", f"base: {base}")
    files: dict[str, Content | Maker] = {f"{ABLATION_DIR}/ablation.yaml": text.encode()}
    if base_content is not None:
        files[f"{ABLATION_DIR}/{base}"] = base_content
    return Case(name, "plan", f"{ABLATION_DIR}/ablation.yaml", files)


def hostile_cases(backend: str | None = None) -> list[Case]:
    """Hand-written malformed and malicious inputs; `backend` pins the run specs' backend."""
    spec = f"{SPEC_DIR}/spec.yaml"

    def run(name: str, content: Content | Maker, *args: str, **extra: Content) -> Case:
        return Case(name, "validate", spec, {spec: content, **extra}, args)

    deep_list = b"x: " + b"[" * 3000 + b"]" * 3000 + b"\n"
    deep_map = b"x: " + b"{a: " * 3000 + b"1" + b"}" * 3000 + b"\n"
    many_keys = b"name: x\n" + b"".join(b"k%d: 1\n" % i for i in range(200_000))
    some_keys = b"name: x\n" + b"".join(b"k%d: 1\n" % i for i in range(5_000))
    return [
        run("hostile:alias-bomb", alias_bomb()),
        run("hostile:alias-cycle", b"name: &a [*a]\n"),
        run("hostile:deep-list", deep_list),
        run("hostile:deep-map", deep_map),
        run("hostile:200k-unknown-keys", many_keys),
        run("hostile:5k-unknown-keys", some_keys),
        run("hostile:latin-1", "name: café\n".encode("latin-1")),
        run("hostile:utf-16", RUN_SPEC.read_text().encode("utf-16")),
        run("hostile:nul-byte", b"name: a\x00b\n"),
        run("hostile:python-tag", b"name: !!python/object/apply:os.system ['touch PWNED']\n"),
        run("hostile:custom-tag", b"name: !include other.yaml\n"),
        run("hostile:unhashable-key", b"? [a, b]\n: 1\n"),
        run("hostile:duplicate-key", RUN_SPEC.read_bytes() + b"seed: 1\n"),
        run("hostile:two-documents", RUN_SPEC.read_bytes() + b"---\nname: again\n"),
        run("hostile:empty", b""),
        run("hostile:comment-only", b"# nothing\n"),
        run("hostile:top-level-list", b"- name: x\n"),
        run("hostile:top-level-scalar", b"just text\n"),
        run("hostile:huge-string", b"name: " + b"x" * 600_000 + b"\n"),
        run("hostile:huge-key", b"x" * 100_000 + b": 1\n"),
        run("hostile:non-string-keys", b"1: a\nnull: b\ntrue: c\n"),
        run("hostile:directory", "dir"),
        run("hostile:fifo", "fifo"),
        run("hostile:dev-zero", "->/dev/zero"),
        run("hostile:set-deep", RUN_SPEC.read_bytes(), "--set", "seed=" + "[" * 3000),
        run("hostile:set-bomb", RUN_SPEC.read_bytes(), "--set", "name=" + "[" * 200 + "]" * 200),
        run(
            "hostile:dataset-fifo", lambda root: _cifar_at(str(root / "pipe"), backend), pipe="fifo"
        ),
        run("hostile:dataset-dev-zero", _cifar_at("/dev/zero", backend)),
        run("hostile:dataset-home", _cifar_at("~/no-such-bnbench-folder", backend)),
        run("hostile:npz-fifo", lambda root: _npz_at(str(root / "pipe"), backend), pipe="fifo"),
        run("hostile:npz-dev-zero", _npz_at("/dev/zero", backend)),
        _cifar_folder_case("hostile:cifar-pickle-payload", cifar_payload, backend),
        _cifar_folder_case("hostile:cifar-not-a-pickle", b"not a pickle", backend),
        _ablation_with_base("hostile:base-latin-1", "base.yaml", "name: café\n".encode("latin-1")),
        _ablation_with_base("hostile:base-directory", "basedir", "dir"),
        _ablation_with_base("hostile:base-bomb", "base.yaml", alias_bomb()),
        _ablation_with_base("hostile:base-missing", "missing.yaml", None),
        _ablation_with_base("hostile:base-fifo", "base.yaml", "fifo"),
        _ablation_with_base("hostile:base-itself", "ablation.yaml", None),
        _ablation_with_base("hostile:base-nul", '"a\\0b.yaml"', None),
        _ablation_with_base("hostile:base-long-name", "x" * 5000 + ".yaml", None),
    ]


# --- running ----------------------------------------------------------------------------------


def lay_out(case: Case, root: Path) -> Path:
    """Write the case's files under `root` and return the spec path; `root/work` is the cwd."""
    (root / "work").mkdir(parents=True, exist_ok=True)
    for relative, content in case.files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        made = content(root) if callable(content) else content
        if made == "dir":
            path.mkdir()
        elif made == "fifo":
            os.mkfifo(path)
        elif isinstance(made, str) and made.startswith("->"):
            path.symlink_to(made[2:])
        else:
            path.write_bytes(made if isinstance(made, bytes) else made.encode())
    return root / case.target


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def classify(code: int | None, output: str) -> str:
    """The outcome of one run from its exit code (None: timed out) and output."""
    if code is None:
        return "hang"
    if "Traceback" in output:
        return "traceback"
    if code == 0:
        return "ok"
    if code == 2 and "error:" in output:
        return "refused" if output.strip().count("\n") < MAX_MESSAGE_LINES else "long"
    return "failed"


def run_subprocess(case: Case, spec: Path, cwd: Path, timeout: float) -> tuple[int | None, str]:
    """Run `python -m bnbench COMMAND SPEC` in `cwd`; (exit code or None on timeout, output)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "COLUMNS": "200"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "bnbench", case.command, str(spec), *case.args]
    try:
        done = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as err:
        partial = (err.stdout or b"") + (err.stderr or b"")
        return None, partial.decode(errors="replace") if isinstance(partial, bytes) else partial
    return done.returncode, done.stdout + done.stderr


Runner = Callable[[Case, Path, Path], tuple[int | None, str]]


def try_case(case: Case, run: Runner) -> Outcome:
    """Lay the case out in a fresh folder, run it and classify what happened."""
    with tempfile.TemporaryDirectory(prefix="bnbench-fuzz-") as tmp:
        root = Path(tmp)
        spec = lay_out(case, root)
        work = root / "work"
        before = _files(work)
        start = time.monotonic()
        code, output = run(case, spec, work)
        seconds = time.monotonic() - start
        wrote = sorted(_files(work) - before)
    return Outcome(case, classify(code, output), wrote, output.strip(), seconds)


def select(
    count: int, seed: int, only: str | None = None, backend: str | None = None
) -> list[Case]:
    """Every hostile case plus `count` mutants drawn at random (all of them when count < 0)."""
    cases = mutation_cases(backend)
    if count >= 0:
        cases = random.Random(seed).sample(cases, min(count, len(cases)))
    cases = hostile_cases(backend) + cases
    return [c for c in cases if only is None or c.command == only]


def report(outcomes: list[Outcome]) -> str:
    counts = Counter(o.kind for o in outcomes)
    lines = [f"{len(outcomes)} cases: " + ", ".join(f"{k} {counts[k]}" for k in OUTCOMES)]
    lines.append(f"wrote files: {sum(bool(o.wrote) for o in outcomes)}")
    for o in outcomes:
        if o.kind not in ("ok", "refused") or o.wrote:
            tail = o.message.splitlines()[-1][:200] if o.message else ""
            lines.append(f"  {o.kind:9} {o.case.command:8} {o.case.name}  {o.wrote or ''} {tail}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300, help="mutants to draw (-1: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    parser.add_argument("--only", choices=["validate", "plan"], help="one command's cases")
    parser.add_argument("--verbose", action="store_true", help="print every case")
    args = parser.parse_args()
    cases = select(args.count, args.seed, args.only)
    outcomes = []
    for index, case in enumerate(cases, 1):
        outcome = try_case(case, lambda c, s, w: run_subprocess(c, s, w, args.timeout))
        outcomes.append(outcome)
        if args.verbose:
            last = outcome.message.splitlines()[-1][:150] if outcome.message else ""
            took = f"{outcome.seconds:5.1f}s"
            print(f"[{index}/{len(cases)}] {outcome.kind:9} {took} {case.name} {last}")
    print(report(outcomes))


if __name__ == "__main__":
    main()
