"""`bnbench claims`: list the claims, run them, report their verdicts.

`bnbench.claims` declares and judges the claims; running them is here, where the other
commands hand ablations to `bnbench.ablate.runner`: each claim's ablation runs into `OUT/<id>/`
as `bnbench ablate` would run it, so a claims run resumes like an ablation (finished runs are
skipped, interrupted ones re-run, also after `kill -9`). User errors (`SpecError`) become a
message on stderr and exit code 2, with nothing written.
"""

from __future__ import annotations

import functools
import json
import shlex
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bnbench.cli.common import GroupSizeOption
from bnbench.cli.tables import show
from bnbench.errors import SpecError, user_errors

if TYPE_CHECKING:
    from bnbench.ablate.runner import Listener, Outcome
    from bnbench.analysis.multiplicity import Correction
    from bnbench.claims.claim import Claim
    from bnbench.claims.retarget import Onto
    from bnbench.config.ablation import Ablation

claims_app = typer.Typer(
    help="Common claims about batch normalization, each a shipped ablation with a verdict rule: "
    "list them, run them (resumable), and report verdicts with their statistics and figures.",
    no_args_is_help=True,
    rich_markup_mode="markdown",  # paragraphs rewrap; `code` shows as code
)
console = Console()
err_console = Console(stderr=True)


ConfigsOption = Annotated[
    Path | None,
    typer.Option(
        help="Folder of your own claim ablations, `CLAIM_ID.yaml` each (default: the ones "
        "shipped in the package, bnbench/claims/catalog)."
    ),
]


class CorrectionChoice(str, Enum):
    """The claims report's multiplicity correction (`bnbench.analysis.multiplicity`)."""

    holm = "holm"
    bh = "bh"


_CORRECTION: dict[CorrectionChoice, Correction] = {CorrectionChoice.holm: "holm",
                                                   CorrectionChoice.bh: "bh"}  # fmt: skip

CorrectionOption = Annotated[
    CorrectionChoice | None,
    typer.Option(
        help="Multiplicity correction over the report's findings: holm (family-wise error "
        "5%) or bh (Benjamini-Hochberg, false discovery rate 5%; more decisions, each less "
        "sure). Default: the one recorded in OUT/claims.json, else holm."
    ),
]


@claims_app.command("list")
@user_errors
def list_claims(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the claims: id, the claim, its source, what is measured, and the runtime."""
    from bnbench.claims.registry import CLAIMS

    entries = [claim.listing() for claim in CLAIMS.values()]
    if as_json:
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return
    table = Table(show_lines=False)
    table.add_column("id", no_wrap=True)
    for column in ("claim", "source", "measures", "runtime"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(*(entry[k] for k in ("id", "claim", "source", "measures", "runtime")))
    show(table, console)


@claims_app.command("run")
@user_errors
def run(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option(help="Results directory; each claim goes to `OUT/CLAIM_ID/`.")
    ],
    jobs: Annotated[int, typer.Option(help="Runs at once, each in its own process.")] = 1,
    group_size: GroupSizeOption = 16,
    only: Annotated[
        str | None, typer.Option(help="Comma-separated claim ids (default: all).")
    ] = None,
    quick: Annotated[
        bool, typer.Option(help="The reduced budget: fewer seeds, grid points or arms.")
    ] = False,
    seeds: Annotated[
        str | None,
        typer.Option(help="A count N (seeds 0..N-1) or a list, `0-9,20` (default: the "
                     "budget's, 10, from a power argument)."),
    ] = None,
    until_decided: Annotated[bool, typer.Option(
        help="Add seeds in rounds to the claims with open findings, each stopped by a "
        "group-sequential test, until decided or --max-seeds (resumable).")] = False,
    max_seeds: Annotated[int, typer.Option(help="With --until-decided: the most seeds.")] = 20,
    report: Annotated[bool, typer.Option(help="Write the claims report at the end.")] = True,
    estimate: Annotated[bool, typer.Option(
        "--estimate", help="Estimate the runtime instead (a short probe per network, data and "
        "way of training, in a temporary folder); trains and writes nothing.")] = False,
    configs: ConfigsOption = None,
    correction: CorrectionOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live display.")] = False,
    dataset: Annotated[
        str | None,
        typer.Option(
            help="Run the claims on this dataset instead (digits, mnist, "
            "fashion_mnist, cifar10, cifar100, mnist1d, npz, ...): data, budget and "
            "targets are retargeted by rule."
        ),
    ] = None,
    dataset_path: Annotated[
        Path | None, typer.Option(help="The .npz file of --dataset npz.")
    ] = None,
    base: Annotated[
        Path | None,
        typer.Option(
            help="Your own run spec: run the claims that apply to its data and "
            "network; the others are listed as skipped, with the reason."
        ),
    ] = None,
) -> None:
    """Run the claims' ablations into `OUT/CLAIM_ID/` (resumable: the same command continues
    an interrupted run), then write the report."""
    from bnbench.ablate.groups import check_group_size
    from bnbench.claims.plan import CONFIGS, parse_seeds, plan_claims, seed_text
    from bnbench.claims.registry import select

    if jobs < 1:
        raise SpecError(f"--jobs must be at least 1, got {jobs}")
    check_group_size(group_size)
    folder = configs or CONFIGS
    chosen = None if seeds is None else parse_seeds(seeds)
    if until_decided and max_seeds < (len(chosen) if chosen else 2):
        raise SpecError(f"--max-seeds must be at least the {len(chosen or [])} seeds to start "
                        f"with (and 2), got {max_seeds}")  # fmt: skip
    replan: Callable[..., Planned]
    if dataset is not None or base is not None or dataset_path is not None:
        claims = select(only)
        onto = _onto(dataset, dataset_path, base)
        planned = _plan_retargeted(claims, out, quick, folder, onto, chosen,
                                   extend=until_decided, write=not estimate)  # fmt: skip
        replan = functools.partial(_replan_retargeted, out=out, quick=quick, configs=folder,
                                   onto=onto, sizes={})  # fmt: skip
    else:
        planned = plan_claims(select(only), out, quick, folder, chosen, extend=until_decided)
        replan = functools.partial(plan_claims, out=out, quick=quick, configs=folder, extend=True)
    total = sum(len(ablation.runs) for _, ablation in planned)
    budget = "quick" if quick else "full"
    used = sorted({seed_text(a.resolved["seeds"]) for _, a in planned})
    console.print(f"{len(planned)} claims, {total} runs ({budget} budget, seeds "
                  f"{'; '.join(used)}), --jobs {jobs} → {out}")  # fmt: skip
    if estimate:
        _print_estimate(planned, out, jobs, until_decided, group_size)
        return
    display = functools.partial(_display, quiet=quiet, jobs=jobs)
    if until_decided:
        outcome = run_until_decided(planned, out, jobs, display, max_seeds, replan, group_size)
    else:
        outcome = run_claims(planned, out, jobs, display, group_size)
    if outcome.interrupted:
        err_console.print(f"interrupted; to resume, run the same command: {same_command(ctx)}",
                          highlight=False, soft_wrap=True)  # fmt: skip
        raise typer.Exit(130)
    if report:
        _write_report(out, html=False, configs=folder, correction=correction)
    if outcome.failed:
        for claim_id, runs in outcome.failed.items():
            err_console.print(f"[red]{claim_id}: {len(runs)} run(s) failed[/] "
                              f"(traceback.txt in each): {', '.join(runs)}")  # fmt: skip
        raise typer.Exit(1)


def same_command(ctx: typer.Context) -> str:
    """The `bnbench claims run` command line that repeats this one: every option whose parsed
    value is not its default, so a resume command never loses a flag added later."""
    words = ["bnbench", "claims", "run"]
    for param in ctx.command.params:
        if param.param_type_name != "option" or param.name is None:
            continue
        value = ctx.params[param.name]
        if value is None or value == param.default:
            continue
        if isinstance(value, bool):  # a flag: --quick, or --no-report for a default-on one
            words.append(param.opts[0] if value else param.secondary_opts[0])
        else:  # a choice (`str, Enum`) by its value: str() would give its class name too
            words += [param.opts[0], str(value.value if isinstance(value, Enum) else value)]
    return shlex.join(words)


def _onto(dataset: str | None, dataset_path: Path | None, base: Path | None) -> Onto:
    """What --dataset (--dataset-path) or --base retarget the claims onto, checked."""
    from bnbench.claims.retarget import onto_base, onto_dataset

    if dataset is not None and base is not None:
        raise SpecError("give --dataset or --base, not both (--base brings its own data)")
    if dataset is None:
        if dataset_path is not None:
            raise SpecError("--dataset-path goes with --dataset npz")
        assert base is not None
        return onto_base(base)
    return onto_dataset(dataset, dataset_path)


def _plan_retargeted(claims: list[Claim], out: Path, quick: bool, configs: Path, onto: Onto,
                     seeds: list[int] | None = None, *, extend: bool = False,
                     write: bool = True) -> Planned:  # fmt: skip
    """Retarget the claims onto --dataset or --base, print the skipped ones with their reasons
    and keep the derivation in OUT/retarget.json (written only once all is checked, and only
    with `write`); `extend` as `plan_claims`'s, for --until-decided."""
    from bnbench.claims.retarget import RECORD, plan_retargeted, read_record, record
    from bnbench.results.files import write_json

    planned, skipped = plan_retargeted(claims, out, quick, onto, configs, seeds, extend=extend)
    for entry in planned:
        console.print(f"[bold]{entry.claim.id}[/] {onto.label}: " + "; ".join(entry.notes),
                      highlight=False)  # fmt: skip
    for gone in skipped:
        console.print(f"[yellow]skipped[/] {gone.claim.id}: {escape(gone.reason)}",
                      highlight=False)  # fmt: skip
    if not planned:
        raise SpecError(f"no claim applies {onto.label}; skipped: "
                        + "; ".join(f"{g.claim.id} ({g.reason})" for g in skipped))  # fmt: skip
    found = record(onto, quick, planned, skipped)
    before = read_record(out)  # an earlier --only part of the same retargeted suite
    keys = ("onto", "budget")
    if before is not None and [before[k] for k in keys] != [found[k] for k in keys]:
        raise SpecError(f"{out}: holds claims run {before['onto']} ({before['budget']} budget); "
                        "choose another --out")  # fmt: skip
    if before is not None:
        found = {**found, "notes": {**before["notes"], **found["notes"]},
                 "skipped": {**before["skipped"], **found["skipped"]}}  # fmt: skip
    if write:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / RECORD, found)
    return [(entry.claim, entry.ablation) for entry in planned]


def _print_estimate(planned: list[tuple[Claim, Ablation]], out: Path, jobs: int,
                    until_decided: bool, group_size: int) -> None:  # fmt: skip
    """`claims run --estimate`: each claim's runs and estimated time, and the suite's."""
    from bnbench.ablate.estimate import describe_estimate, duration
    from bnbench.ablate.suite_estimate import estimate_suite, total_seconds, unestimated

    parts = [(claim.id, ablation) for claim, ablation in planned]
    with err_console.status("timing probe runs…") as status:
        found = estimate_suite(parts, out, jobs, group_size=group_size,
                               on_part=lambda cid: status.update(f"estimating {cid}…"))
    table = Table(title=f"estimated runtime at --jobs {jobs}")
    for column in ("claim", "runs", "to train", "estimated"):
        table.add_column(column, overflow="fold")
    for entry in found:
        seconds = entry.estimate.seconds
        shown = "n/a" if seconds is None else duration(seconds)
        table.add_row(entry.name, str(entry.runs), str(entry.estimate.remaining), shown)
    show(table, console)
    for entry in found:  # what each estimate was measured from
        for line in describe_estimate(entry.estimate, out / entry.name, probe=True):
            if not line.lstrip().startswith("(from the workers' start"):  # said once, below
                console.print(f"{entry.name}: {line.strip()}", markup=False,
                              highlight=False)  # fmt: skip
    total = total_seconds(found)
    left = unestimated(found)
    words = "n/a (a claim could not be estimated)" if total is None else duration(total)
    runs = sum(e.estimate.remaining for e in found)
    console.print(f"estimated total ≈ {words} for {runs} run{'s' if runs != 1 else ''} at "
                  f"--jobs {jobs}" + (f" ({left} runs not estimated)" if left else ""),
                  markup=False, highlight=False)  # fmt: skip
    rounds = "; --until-decided: the first round only" if until_decided else ""
    console.print("(each claim from its workers' start to its last run's end; a program's "
                  "compilation charged once, assuming an empty compilation cache"
                  f"{rounds})", markup=False, highlight=False)  # fmt: skip


def _replan_retargeted(claims: list[Claim], *, seeds: list[int], out: Path, quick: bool,
                       configs: Path, onto: Onto, sizes: dict[str, int]) -> Planned:  # fmt: skip
    """A round of --until-decided on retargeted claims: the claims (planned, not skipped, in the
    first round, whose derivation OUT/retarget.json already keeps) with this round's seeds;
    `sizes` keeps the training-set sizes read across rounds."""
    from bnbench.claims.retarget import plan_retargeted

    planned, _ = plan_retargeted(claims, out, quick, onto, configs, seeds, extend=True,
                                 sizes=sizes)  # fmt: skip
    return [(entry.claim, entry.ablation) for entry in planned]


@claims_app.command("report")
@user_errors
def report_command(
    results_dir: Annotated[
        list[Path],
        typer.Argument(help="A claims results directory; two or more: the transfer table."),
    ],
    html: Annotated[
        bool,
        typer.Option(help="Also write claims.html (self-contained); one an earlier --html "
                     "wrote is always re-rendered."),
    ] = False,
    configs: ConfigsOption = None,
    correction: CorrectionOption = None,
) -> None:
    """Assess every claim in RESULTS_DIR from its runs alone: claims.md, claims.json, a figure
    per claim in figures/ (and claims.html, kept current once written). Given two or more
    folders (e.g. the same claims on two datasets), print one table of each finding's verdict
    and effect size per folder, from their claims.json, marking where the verdicts agree;
    nothing is written."""
    from bnbench.claims.plan import CONFIGS

    if len(results_dir) > 1:
        _transfer(results_dir, html)
        return
    _write_report(results_dir[0], html=html, configs=configs or CONFIGS, correction=correction)


def _transfer(folders: list[Path], html: bool) -> None:
    from bnbench.claims.transfer import read_folders, shown

    if html:
        raise SpecError("--html is for one claims folder; the transfer table is printed")
    names, rows = read_folders(folders)
    table = Table(title="claims across folders")
    for column in ("claim", "finding", *names, "agree"):
        table.add_column(escape(column), overflow="fold")
    colour = {"yes": "green", "no": "red"}
    for row in rows:
        agree = f"[{colour.get(row.agreement, 'white')}]{row.agreement}[/]"
        cells = [escape(shown(cell)) for cell in row.cells]
        table.add_row(row.claim, escape(row.finding or "-"), *cells, agree)
    show(table, console)


def _write_report(out: Path, html: bool, configs: Path,
                  correction: CorrectionChoice | None = None) -> None:  # fmt: skip
    from bnbench.claims.adaptive import sequential_record
    from bnbench.claims.render import p_column, rows, sequential_text
    from bnbench.claims.report import HTML, recorded_correction, write_claims_report

    used = recorded_correction(out) if correction is None else _CORRECTION[correction]
    reports, paths = write_claims_report(out, html=html, configs=configs, correction=used)
    sequential = sequential_record(out)
    table = Table(title="claims", caption=sequential_text(sequential, used) or None)
    table.add_column("claim", no_wrap=True)
    for column in ("finding", "verdict", "statistic [CI]", p_column(used), "stability", "n"):
        table.add_column(column, overflow="fold")
    colour = {"supported": "green", "not supported": "red", "inconclusive": "yellow"}
    for row in rows(reports):
        verdict = f"[{colour.get(row['verdict'], 'white')}]{row['verdict']}[/]"
        table.add_row(row["claim"], escape(row["finding"]), verdict, row["statistic"], row["p"],
                      row["stability"], row["n"])  # fmt: skip
    show(table, console)
    console.print(f"wrote {', '.join(str(p) for p in paths)} and {out / 'figures'}/")
    if not html and paths[-1].name == HTML:  # an earlier --html wrote it
        console.print(f"({HTML} re-rendered too, so that it shows these results)")


@contextmanager
def _display(claim_id: str, ablation: Ablation, folder: Path, *, quiet: bool, jobs: int
             ) -> Iterator[Listener]:  # fmt: skip
    from bnbench.ablate.progress import AblationProgress, QuietProgress

    done = finished_runs(ablation, folder)
    console.print(f"[bold]{claim_id}[/]: {len(ablation.runs)} runs, {done} already finished")
    progress = (QuietProgress(err_console) if quiet
                else AblationProgress(console, len(ablation.runs), done, jobs))  # fmt: skip
    with progress as listener:
        yield listener


@dataclass
class ClaimsOutcome:
    """What a `claims run` did, claim by claim."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def failed(self) -> dict[str, list[str]]:
        return {cid: o.failed for cid, o in self.outcomes.items() if o.failed}


Display = Callable[[str, "Ablation", Path], AbstractContextManager["Listener"]]


def run_claims(
    planned: list[tuple[Claim, Ablation]],
    out: Path,
    jobs: int,
    display: Display,
    group_size: int,
) -> ClaimsOutcome:
    """Run each planned claim's ablation into `OUT/<id>/` and write its runs.csv and tables,
    as `bnbench ablate` does for an ablation.

    Args:
        planned: From `bnbench.claims.plan.plan_claims`.
        out: The claims results directory.
        jobs: Runs at once within a claim.
        display: (claim id, ablation, folder) -> a context giving the progress listener.
        group_size: The most seeds of one arm and cell trained as one vectorized group on JAX.

    Returns:
        The outcome of every claim that ran; `interrupted` after a Ctrl-C, when the claims
        after the interrupted one are not started.
    """
    from bnbench.ablate.runner import run_ablation
    from bnbench.analysis.tables import build_report
    from bnbench.claims.plan import extend_folder

    result = ClaimsOutcome()
    for claim, ablation in planned:
        folder = out / claim.id
        extend_folder(ablation, folder)  # --until-decided: this round's seeds added
        with display(claim.id, ablation, folder) as listener:
            outcome = run_ablation(ablation, folder, jobs=jobs, listener=listener,
                                   group_size=group_size)  # fmt: skip
        result.outcomes[claim.id] = outcome
        if outcome.interrupted:
            result.interrupted = True
            break
        build_report(folder)
    return result


Planned = list[tuple["Claim", "Ablation"]]


def run_until_decided(planned: Planned, out: Path, jobs: int, display: Display, max_seeds: int,
                      replan: Callable[..., Planned],
                      group_size: int) -> ClaimsOutcome:  # fmt: skip
    """Run the planned claims in rounds (`bnbench.claims.adaptive`): after each round, look at
    every open finding; claims with one still open get more seeds, until decided or M.

    Args:
        planned: The first round (or, resuming, the claims as first planned).
        out: The claims results directory; `OUT/looks.json` records the looks.
        jobs, display, group_size: As `run_claims`.
        max_seeds: M.
        replan: (claims, seeds=...) -> planned, as `plan_claims` with out/quick/configs bound.

    Returns:
        The outcome of the last round of each claim; `interrupted` after a Ctrl-C.
    """
    from bnbench.claims.adaptive import load_looks, look, save_looks
    from bnbench.claims.evidence import load_evidence
    from bnbench.results.tree_files import read_ablation

    first = {claim.id: list(ablation.resolved["seeds"]) for claim, ablation in planned}
    looks = load_looks(out, max_seeds, step=max(len(s) for s in first.values()))
    result = ClaimsOutcome()
    while True:
        claims = [claim for claim, _ in planned if looks.open(claim.id)]
        if not claims:
            return result
        rounds = [replan([c], seeds=looks.seeds(c.id) or first[c.id])[0] for c in claims]
        done = run_claims(rounds, out, jobs, display, group_size)
        result.outcomes.update(done.outcomes)
        if done.interrupted or done.failed:
            result.interrupted = done.interrupted
            return result
        assessed = []
        for claim, ablation in rounds:
            stored = read_ablation(out / claim.id)
            findings = claim.assess(load_evidence(out / claim.id, stored)).findings
            assessed.append((claim.id, list(ablation.resolved["seeds"]), findings))
        family = sum(len(findings) for *_, findings in assessed)  # all claims at the first
        for claim_id, seeds, findings in assessed:
            look(looks, claim_id, seeds, findings, family)
        save_looks(out, looks)


def finished_runs(ablation: Ablation, folder: Path) -> int:
    """How many of the ablation's runs are already finished in `folder`."""
    from bnbench.results import rundir
    from bnbench.results.layout import run_path

    return sum(rundir.is_done(rundir.run_state(run_path(folder, r.run_id))) for r in ablation.runs)
