"""The ``churnguard`` command line: thin wrappers that read params, call one function, log.

Exit codes: 0 ok · 1 internal error · 2 usage or config error · 3 input data rejected ·
4 model missing or mismatched · 5 output folder locked by another run ·
6 output not writable (disk full, read-only folder, no permission).
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from churnguard.config import Params, load_params
from churnguard.errors import ChurnguardError, ConfigError, output_error

app = typer.Typer(
    name="churnguard",
    help=(
        "Point-in-time churn prediction and ranked, costed retention-action lists.\n\n"
        "Exit codes: 0 ok, 1 internal error, 2 usage/config error, 3 input data rejected, "
        "4 model missing or mismatched, 5 output folder locked by another run, "
        "6 output not writable (disk full, read-only folder, no permission)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
report_app = typer.Typer(
    help="Business reports (retention rate per period, measured uplift).", no_args_is_help=True
)
app.add_typer(report_app, name="report")
outcomes_app = typer.Typer(
    help="The outcome ledger: what happened to the customers on the lists.", no_args_is_help=True
)
app.add_typer(outcomes_app, name="outcomes")

log = logging.getLogger("churnguard")
err_console = Console(stderr=True)

ParamsOpt = Annotated[
    Path, typer.Option("--params", "-p", help="Path to params.yaml.", show_default=True)
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")]
EngineOpt = Annotated[
    str | None, typer.Option("--engine", help="Override engine.name (duckdb | spark).")
]


def _with_engine(p: Params, engine: str | None) -> Params:
    """``--engine`` overrides ``engine.name`` (validated like params.yaml)."""
    if engine is None:
        return p
    from churnguard.engines import ENGINES

    if engine not in ENGINES:
        _fail(ConfigError(f"--engine must be one of {', '.join(sorted(ENGINES))}, not {engine!r}"))
    return p.model_copy(update={"engine": p.engine.model_copy(update={"name": engine})})


def _setup_logging(quiet: bool = False) -> None:
    root = logging.getLogger()
    if not any(isinstance(h, RichHandler) for h in root.handlers):
        handler = RichHandler(console=err_console, show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("churnguard").setLevel(logging.WARNING if quiet else logging.INFO)


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Callable[[str, float], None]]:
    """A rich progress bar fed by ``update(stage, fraction_done)``; silent when not a terminal."""
    if not enabled or not err_console.is_terminal:
        yield lambda stage, fraction: None
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("starting", total=1.0)

        def update(stage: str, fraction: float) -> None:
            bar.update(task, description=stage, completed=max(0.0, min(1.0, fraction)))

        yield update


def _fail(exc: ChurnguardError) -> None:
    err_console.print(f"[bold red]error[/]: {exc}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code=exc.exit_code)


def _load(params_path: Path, quiet: bool, require: tuple[str, ...] = ()) -> Params:
    _setup_logging(quiet)
    try:
        return load_params(params_path, require)
    except ChurnguardError as exc:
        _fail(exc)
        raise  # unreachable: _fail always raises


def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except ChurnguardError as exc:
        _fail(exc)
    except OSError as exc:  # disk full, read-only folder, no permission: exit 6, not a traceback
        err = output_error(exc)
        if err is None:
            raise
        _fail(err)


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

    cfg = _load(params, quiet, ("generate",)).generate
    overrides: dict[str, Any] = {}
    if n_customers is not None:
        overrides["n_customers"] = n_customers
    if seed is not None:
        overrides["seed"] = seed
    if output is not None:
        overrides["output"] = str(output)
    if overrides:
        cfg = cfg.model_copy(update=overrides)
    with progress_bar(not quiet) as update:
        summary = _run(synth.run_generate, cfg, update)
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

    p = _load(params, quiet, ("ingest",))
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
    engine: EngineOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Build point-in-time snapshots (labelled, one per cutoff) and the as-of scoring snapshot."""
    from churnguard import features as features_mod

    p = _with_engine(_load(params, quiet, () if describe else ("features",)), engine)
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
def train(
    params: ParamsOpt = Path("params.yaml"),
    no_mlflow: Annotated[
        bool, typer.Option("--no-mlflow", help="Do not log the run to MLflow.")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Train LightGBM + calibration on rolling snapshots split by cutoff date; fit baselines."""
    from churnguard import train as train_mod

    p = _load(params, quiet, ("train",))
    summary = _run(train_mod.run_train, p.train)
    log.info(
        "train: best iteration %d, calibration %s, test cutoff %s → %s",
        summary["best_iteration"],
        summary["calibration"],
        summary["test_cutoff"],
        p.train.model_dir,
    )
    if not no_mlflow:
        from churnguard import registry

        run_id = _run(registry.log_training_run, p.train, summary, Path(p.ingest.source.path).name)
        log.info("MLflow run %s logged (experiment %s)", run_id, p.train.experiment_name)


@app.command()
def evaluate(
    params: ParamsOpt = Path("params.yaml"),
    no_mlflow: Annotated[
        bool, typer.Option("--no-mlflow", help="Skip MLflow logging and the registry gate.")
    ] = False,
    dvc_plots: Annotated[
        bool,
        typer.Option(
            "--dvc-plots",
            help="Print the plots: block for dvc.yaml (from the plot specs) and exit.",
        ),
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Metrics and plots for the model and every baseline on the test cutoff; registry gate."""
    from churnguard import evaluate as evaluate_mod

    if dvc_plots:
        import yaml

        from churnguard import metrics as metrics_mod

        folder = f"{_load(params, True).evaluate.model_dir}/eval/plots"
        block = {"plots": metrics_mod.dvc_plots(metrics_mod.plot_specs(), folder=folder)}
        typer.echo(yaml.safe_dump(block, sort_keys=False, allow_unicode=True, width=1000), nl=False)
        return
    p = _load(params, quiet, ("evaluate", "train"))
    metrics = _run(evaluate_mod.run_evaluate, p.evaluate)
    model = metrics["scorers"]["model"]
    log.info(
        "evaluate (test cutoff %s): model ROC-AUC %s, PR-AUC %s, Brier %s",
        metrics["test_cutoff"],
        *(
            f"{model[k]:.4f}" if model.get(k) is not None else "n/a"
            for k in ("roc_auc", "pr_auc", "brier")
        ),
    )
    for reason in (metrics.get("choice") or {}).get("reasons", []):
        err_console.print(f"scorer: {reason}", highlight=False, markup=False)
    if not no_mlflow:
        from churnguard import registry

        decision = _run(registry.gate_and_register, p.train, p.evaluate, metrics)
        _print_decision("registry gate", decision)


def _print_decision(what: str, decision: Any) -> None:
    verdict = "[green]promoted to champion[/]" if decision.promote else "[yellow]not promoted[/]"
    err_console.print(f"{what}: {verdict}", highlight=False)
    for reason in decision.reasons:
        err_console.print(f"  - {reason}", highlight=False, markup=False)


@app.command()
def promote(
    params: ParamsOpt = Path("params.yaml"),
    version: Annotated[
        str | None,
        typer.Option(help="Registered version to promote; default the newest one."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Promote even when the gate refuses (needs --reason)."),
    ] = False,
    reason: Annotated[
        str | None,
        typer.Option(help="Why (recorded in the version's description and tags)."),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Move @champion to a registered version after the gate: at least as good as the
    champion on the current test rows by evaluate.primary_metric (exit 2 when refused)."""
    from churnguard import registry

    p = _load(params, quiet, ("train", "evaluate"))
    decision = _run(registry.promote, p.train, p.evaluate, version, force, reason)
    _print_decision("promote", decision)


@app.command()
def score(
    params: ParamsOpt = Path("params.yaml"),
    as_of: Annotated[
        str | None,
        typer.Option(
            help="Score as of this date (YYYY-MM-DD); default score.as_of, else the last transaction date."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Model folder (e.g. models/) or models:/ URI; default models:/<name>@champion."
        ),
    ] = None,
    transactions: Annotated[
        Path | None,
        typer.Option(help="Canonical transactions Parquet; default score.transactions."),
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option(help="Write here instead of <score.output_root>/<as_of>/.")
    ] = None,
    snapshot: Annotated[
        Path | None,
        typer.Option(
            help="Score the as-of snapshot `churnguard features` wrote (e.g. "
            "data/features/current.parquet) instead of building it; refused (exit 3) unless "
            "the current.json beside it says it was built from these transactions for this "
            "as-of date and features.lost_after_days."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rewrite even when inputs are unchanged.")
    ] = False,
    allow_stale: Annotated[
        bool,
        typer.Option(
            "--allow-stale",
            help="Score even when the as-of date is more than score.max_days_after_data "
            "after the last transaction (the lists carry a warning).",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary on stdout.")
    ] = False,
    engine: EngineOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Score customers into ranked, costed retention-action lists per account manager.

    Idempotent (a re-run with the same inputs is a no-op), atomic (a killed run leaves the
    previous lists intact) and locked (a second run on the same folder exits with code 5).
    """
    import json

    from churnguard import ledger as ledger_mod
    from churnguard import score as score_mod

    p = _with_engine(_load(params, quiet or as_json, ("features", "score")), engine)
    if p.score.control_share > 0 and not p.outcomes.ledger:
        log.warning(
            "score.control_share holds customers out, but outcomes.ledger is not set: the lists "
            "are not recorded and no save rate can be measured. Set outcomes.ledger (e.g. "
            "outcomes/ledger) or score.control_share: 0"
        )
    day = None
    if as_of is not None:
        try:
            day = dt.date.fromisoformat(as_of)
        except ValueError:
            _fail(ConfigError(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)"))
    summary = _run(
        score_mod.run_score,
        p.score,
        p.features,
        p.report,
        p.engine,
        as_of=day,
        model=model,
        registered_name=p.train.registered_model_name,
        output_dir=output_dir,
        transactions=transactions,
        force=force,
        allow_stale=allow_stale,
        ledger=Path(p.outcomes.ledger) if p.outcomes.ledger else None,
        record=ledger_mod.recording_allowed(),
        uplift_confidence=p.outcomes.confidence,
        snapshot=snapshot,
    )
    if as_json:
        typer.echo(json.dumps(summary, sort_keys=True, ensure_ascii=False))
    elif not quiet:
        err_console.print(
            f"lists: {summary['output_dir']}/by_manager/  report: {summary['output_dir']}/report.html "
            f"({summary['status']})",
            highlight=False,
            markup=False,
        )


@app.command()
def backtest(
    params: ParamsOpt = Path("params.yaml"),
    as_of: Annotated[str | None, typer.Option(help="One past as-of date (YYYY-MM-DD).")] = None,
    dates: Annotated[
        str | None,
        typer.Option(
            help="Several as-of dates: D1,D2,... or a grid START..END/STEP (e.g. "
            "1997-06-30..1997-12-31/30d; END included)."
        ),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(
            help="Target window after each date: 273d or 39w; default features.horizon_days."
        ),
    ] = None,
    transactions: Annotated[
        Path | None, typer.Option(help="Canonical transactions Parquet; default features.input.")
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(help="Write here instead of <backtest.output_dir>/<first date>_<window>d/."),
    ] = None,
    no_btyd: Annotated[
        bool, typer.Option("--no-btyd", help="Leave out the BG/NBD and Pareto/NBD baselines.")
    ] = False,
    resamples: Annotated[
        int | None, typer.Option(help="Override backtest.resamples.", min=100)
    ] = None,
    no_mlflow: Annotated[
        bool, typer.Option("--no-mlflow", help="Do not log the run to MLflow.")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Evaluate the whole pipeline at past as-of dates against recency, RFM, logistic
    regression, BG/NBD and Pareto/NBD (paired-bootstrap intervals); JSON, Markdown, PNG."""
    from churnguard import backtest as backtest_mod
    from churnguard import backtest_run

    p = _load(params, quiet, ("features", "train"))
    if as_of is not None and dates is not None:
        _fail(ConfigError("give --as-of or --dates, not both"))
    try:
        days = backtest_mod.parse_window(window) if window else p.features.horizon_days
        chosen = backtest_mod.parse_dates(dates if dates is not None else as_of or "")
    except ValueError as exc:
        _fail(ConfigError(f"{exc} (--as-of, --dates, --window)"))
    if not chosen:
        _fail(ConfigError("give --as-of DATE or --dates D1,D2 / START..END/STEP"))
    name = f"{chosen[0]}_{days}d" + ("" if len(chosen) == 1 else f"_{len(chosen)}dates")
    out = output_dir or Path(p.backtest.output_dir) / name
    result = _run(
        backtest_run.run_backtest,
        p,
        chosen,
        days,
        Path(out),
        transactions=transactions,
        btyd=False if no_btyd else None,
        log_mlflow=not no_mlflow,
        resamples=resamples,
    )
    for table in result["dates"]:
        err_console.print(backtest_mod._console_line(table), highlight=False, markup=False)
    err_console.print(
        f"backtest: {out}/{backtest_mod.RESULTS_MD} (and .json, .png)",
        highlight=False,
        markup=False,
    )


@report_app.command("crr")
def report_crr(
    params: ParamsOpt = Path("params.yaml"),
    period: Annotated[str, typer.Option(help="month | quarter | year")] = "month",
    transactions: Annotated[
        str | None,
        typer.Option(
            help="Canonical transactions Parquet (a path, or a URI such as s3://… on the Spark "
            "engine); default score.transactions."
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Also write the table as CSV here.")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Customer retention rate per period: CRR = (E − N) / S × 100, plus churn rate."""
    from rich.table import Table

    from churnguard import crr

    p = _load(params, quiet, ("report",))
    if period not in ("month", "quarter", "year"):
        _fail(ConfigError(f"--period must be month, quarter or year, not {period!r}"))
    tx = transactions or str(p.score.transactions)  # run_crr keeps a URI a URI
    table = _run(crr.run_crr, tx, period, p.report, p.engine, output)  # type: ignore[arg-type]
    out = Table(
        title=f"Customer retention rate per {period}", caption=table.attrs.get("definition", "")
    )
    for col in (
        "period",
        "customers_start",
        "new_customers",
        "lost_customers",
        "customers_end",
        "crr_pct",
        "churn_rate_pct",
    ):
        out.add_column(col, justify="right")
    for row in table.itertuples():
        out.add_row(
            str(row.period),
            f"{row.customers_start:,}",
            f"{row.new_customers + row.reactivated_customers:,}",
            f"{row.lost_customers:,}",
            f"{row.customers_end:,}",
            f"{row.crr_pct:.2f}",
            f"{row.churn_rate_pct:.2f}",
        )
    Console().print(out)


@report_app.command("uplift")
def report_uplift(
    params: ParamsOpt = Path("params.yaml"),
    transactions: Annotated[
        Path | None,
        typer.Option(help="Canonical transactions Parquet; default score.transactions."),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(help="Write uplift.csv and uplift.html here; default outcomes.uplift_dir."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the table as JSON on stdout.")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Measured save rate of each action (treated vs held-out churn after the label window)
    against the save_rate params.yaml assumes, with what to change."""
    import json

    from rich.table import Table

    from churnguard import feedback

    p = _load(params, quiet or as_json, ("features", "score", "outcomes"))
    result = _run(
        feedback.run_uplift,
        p.outcomes,
        p.score,
        p.features,
        p.engine,
        transactions,
        output_dir,
        p.report,
    )
    table = result.pop("table")
    if as_json:
        rows = json.loads(table.to_json(orient="records"))
        typer.echo(json.dumps({**result, "rows": rows}, sort_keys=True, ensure_ascii=False))
        return
    if quiet:
        return
    out = Table(
        title=f"Measured save rates (data to {result['last_transaction']})",
        caption=f"{result['output_dir']}/uplift.csv, uplift.html",
    )
    for col in ("action", "treated", "held out", "save rate", "interval", "assumed", "verdict"):
        out.add_column(col, justify="left" if col in ("action", "verdict") else "right")
    for r in table[table["scope"] == "pooled"].itertuples(index=False):

        def pct(x: float) -> str:
            return "–" if x != x else f"{100 * x:.1f}%"

        out.add_row(
            str(r.action),
            f"{r.n_treated:,}",
            f"{r.n_control:,}",
            pct(r.save_rate),
            f"[{pct(r.save_rate_low)}, {pct(r.save_rate_high)}]",
            pct(r.assumed_save_rate),
            str(r.verdict),
        )
    Console().print(out)
    for line in result["recommendations"]:
        err_console.print(f"change: {line}", highlight=False, markup=False)
    for pend in result["pending"]:
        err_console.print(
            f"waiting: list of {pend['list_date']} ({pend['entries']:,} entries) is measurable "
            f"from {pend['ready_on']}",
            highlight=False,
            markup=False,
        )


@outcomes_app.command("import")
def outcomes_import(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Filled workbooks (.xlsx, sheet List) or CSVs (see the README)."),
    ],
    params: ParamsOpt = Path("params.yaml"),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the import report as JSON on stdout.")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Record what managers did with their lists (contacted_on, outcome, note) in the ledger.

    Rows are checked against the list churnguard recorded for their date; refused rows are
    written to the ledger's rejects/ folder with file, row, column and reason (exit 3; the
    good rows are recorded). Re-importing a file changes nothing."""
    import json

    from churnguard import feedback
    from churnguard.errors import DataError

    p = _load(params, quiet or as_json, ("features", "outcomes"))
    report = _run(feedback.run_import, paths, p.outcomes, p.features.horizon_days)
    if as_json:
        typer.echo(json.dumps(report, sort_keys=True, ensure_ascii=False, default=str))
    for f in report["files"]:
        log.info(
            "%s: %s rows: %s new, %s changed, %s unchanged, %s rejected, %s not worked yet, "
            "%s blank, %s duplicate",
            f["file"],
            f"{f['rows']:,}",
            f["new"],
            f["changed"],
            f["unchanged"],
            f["rejected"],
            f["nothing_recorded"],
            f["blank"],
            f["duplicate"],
        )
        for r in f.get("first_rejects", [])[: 5 if not quiet else 0]:
            err_console.print(
                f"  rejected: {r['file']}, row {r['row']}, column {r['column']}: {r['reason']}: "
                f"{r['detail']}",
                highlight=False,
                markup=False,
            )
    rejected = report["totals"]["rejected"]
    if rejected:
        where = ", ".join(f["rejects_file"] for f in report["files"] if f["rejects_file"])
        _fail(
            DataError(
                f"{rejected:,} row(s) rejected (listed in {where}); the other rows were recorded. "
                "Fix them and import the file again."
            )
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
        ("evaluation", f"{p.evaluate.model_dir}/eval/metrics.json"),
        ("lists (dvc repro)", f"{p.score.output_root}/latest/by_manager/"),
        ("report (dvc repro)", f"{p.score.output_root}/latest/report.html"),
        ("scheduled lists", f"{p.score.output_root}/<as_of>/by_manager/"),
    ]
    if p.outcomes.ledger:
        rows.append(("outcome ledger", p.outcomes.ledger))
        rows.append(("measured uplift", f"{p.outcomes.uplift_dir}/uplift.html"))
    width = max(len(k) for k, _ in rows)
    for label, path in rows:
        exists = "" if Path(path.split("<")[0]).exists() else "  (not built yet)"
        typer.echo(f"{label:<{width}}  {path}{exists}")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
