"""The ``churnguard`` command line: thin wrappers that read params, call one function, log.

Exit codes: 0 ok · 1 internal error · 2 usage or config error · 3 input data rejected ·
4 model missing or mismatched · 5 output folder locked by another run.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler

from churnguard.config import Params, load_params
from churnguard.errors import ChurnguardError

app = typer.Typer(
    name="churnguard",
    help=(
        "Point-in-time churn prediction and ranked, costed retention-action lists.\n\n"
        "Exit codes: 0 ok, 1 internal error, 2 usage/config error, 3 input data rejected, "
        "4 model missing or mismatched, 5 output folder locked by another run."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
report_app = typer.Typer(help="Business reports (retention rate per period).", no_args_is_help=True)
app.add_typer(report_app, name="report")

log = logging.getLogger("churnguard")
err_console = Console(stderr=True)

ParamsOpt = Annotated[
    Path, typer.Option("--params", "-p", help="Path to params.yaml.", show_default=True)
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")]


def _setup_logging(quiet: bool = False) -> None:
    root = logging.getLogger()
    if not any(isinstance(h, RichHandler) for h in root.handlers):
        handler = RichHandler(console=err_console, show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("churnguard").setLevel(logging.WARNING if quiet else logging.INFO)


def _fail(exc: ChurnguardError) -> None:
    err_console.print(f"[bold red]error[/]: {exc}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code=exc.exit_code)


def _load(params_path: Path, quiet: bool) -> Params:
    _setup_logging(quiet)
    try:
        return load_params(params_path)
    except ChurnguardError as exc:
        _fail(exc)
        raise  # unreachable: _fail always raises


def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except ChurnguardError as exc:
        _fail(exc)


@app.command()
def generate(
    params: ParamsOpt = Path("params.yaml"),
    n_customers: Annotated[
        int | None, typer.Option(help="Override generate.n_customers.", min=1)
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Override generate.seed.")] = None,
    output: Annotated[Path | None, typer.Option(help="Override generate.output.")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Write the built-in synthetic purchase history (and its latent truth)."""
    from churnguard import synth

    cfg = _load(params, quiet).generate
    overrides: dict[str, Any] = {}
    if n_customers is not None:
        overrides["n_customers"] = n_customers
    if seed is not None:
        overrides["seed"] = seed
    if output is not None:
        overrides["output"] = str(output)
    if overrides:
        cfg = cfg.model_copy(update=overrides)
    summary = _run(synth.run_generate, cfg)
    log.info(
        "generated %s transactions for %s customers → %s",
        f"{summary['rows']:,}",
        f"{summary['customers']:,}",
        cfg.output,
    )


@app.command()
def ingest(
    params: ParamsOpt = Path("params.yaml"),
    quiet: QuietOpt = False,
) -> None:
    """Validate raw transactions into canonical Parquet; bad rows go to quarantine with a reason."""
    from churnguard import ingest as ingest_mod

    p = _load(params, quiet)
    report = _run(ingest_mod.run_ingest, p.ingest, p.engine)
    log.info(
        "ingest: %s rows in, %s clean, %s quarantined → %s",
        f"{report['rows_in']:,}",
        f"{report['rows_clean']:,}",
        f"{report['rows_quarantined']:,}",
        p.ingest.output_dir,
    )


@app.command()
def features(
    params: ParamsOpt = Path("params.yaml"),
    describe: Annotated[
        bool, typer.Option("--describe", help="Print the feature dictionary (Markdown) and exit.")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Build point-in-time snapshots (labelled, one per cutoff) and the as-of scoring snapshot."""
    from churnguard import features as features_mod

    p = _load(params, quiet)
    if describe:
        typer.echo(features_mod.describe_markdown(p.features), nl=False)
        return
    summary = _run(features_mod.run_features, p.features, p.engine)
    log.info(
        "features: %s snapshot rows over %d cutoffs, %s customers at as-of %s → %s",
        f"{summary['snapshot_rows']:,}",
        len(summary["cutoffs"]),
        f"{summary['current_rows']:,}",
        summary["as_of"],
        p.features.output_dir,
    )


@app.command()
def where(params: ParamsOpt = Path("params.yaml")) -> None:
    """Print where the pipeline's outputs are."""
    p = _load(params, quiet=True)
    rows = [
        ("raw transactions", p.ingest.source.path),
        ("canonical transactions", f"{p.ingest.output_dir}/transactions.parquet"),
        ("quarantine", f"{p.ingest.output_dir}/quarantine.parquet"),
        ("ingest report", f"{p.ingest.output_dir}/ingest_report.json"),
        ("feature snapshots", f"{p.features.output_dir}/snapshots.parquet"),
        ("scoring snapshot", f"{p.features.output_dir}/current.parquet"),
        ("model", p.train.model_dir),
        ("retention lists", f"{p.score.output_root}/<as_of>/by_manager/"),
    ]
    width = max(len(k) for k, _ in rows)
    for label, path in rows:
        exists = "" if Path(path.split("<")[0]).exists() else "  (not built yet)"
        typer.echo(f"{label:<{width}}  {path}{exists}")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
