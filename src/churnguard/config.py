"""Typed configuration: ``params.yaml`` loaded into frozen pydantic models.

Every stage receives only its own section (plus the shared ``engine`` section
where it runs SQL). Unknown keys and wrong types fail before any work, with a
message naming the key, the file and the allowed keys.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from churnguard.errors import ConfigError

CANONICAL_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "order_id",
    "ts",
    "amount",
    "quantity",
    "account_manager",
    "customer_name",
    "region",
    "product_id",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("customer_id", "ts", "amount")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_PERCENT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%\s*")


def memory_bytes(limit: str) -> int:
    """``engine.memory_limit`` in bytes, as DuckDB reads it: "2GB" = 2·10⁹ (decimal units),
    "2GiB" = 2·2³⁰, "80%" = 80% of this machine's physical memory. Anything else is a
    ``ValueError`` (it used to count silently as 2 GB)."""
    m = _PERCENT.fullmatch(limit)
    if m:
        share = float(m.group(1)) / 100
        if not 0 < share <= 1:
            raise ValueError(f"a percentage must be in (0, 100], got {limit!r}")
        return int(share * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    try:
        size = int(TypeAdapter(ByteSize).validate_python(limit))
    except ValidationError:
        raise ValueError(f"{limit!r} is not a size such as 2GB, 1.5GiB, 512MB or 80%") from None
    if size < 1_000_000:
        raise ValueError(f"{limit!r} is below 1MB; give a unit, e.g. 2GB")
    return size


# the engine registry: engine.name → "module:class" (churnguard.engines.get_engine imports
# the module only when that engine is used). Declared here, beside the setting it
# validates, so that config never imports the engines package.
ENGINES: dict[str, str] = {
    "duckdb": "churnguard.engines.duckdb:DuckDBEngine",
    "spark": "churnguard.engines.spark:SparkEngine",
}


class EngineParams(_Section):
    """SQL engine settings shared by every stage that runs SQL."""

    name: str = "duckdb"  # a key of ENGINES
    memory_limit: str = "2GB"
    threads: Annotated[int, Field(ge=1)] = 2
    temp_directory: str = ".tmp/duckdb"

    @field_validator("memory_limit")
    @classmethod
    def _memory_limit(cls, v: str) -> str:
        memory_bytes(v)
        return v

    @field_validator("name")
    @classmethod
    def _known_engine(cls, v: str) -> str:
        if v not in ENGINES:
            raise ValueError(f"unknown engine {v!r}; allowed: {', '.join(sorted(ENGINES))}")
        return v


class TreatmentParams(_Section):
    """A known retention effect for the synthetic closed loop (``generate.treatment``).

    Every customer recorded as *treated* at the start of an episode in the ledger's lists
    is saved with probability ``save_rates[action]`` (0 for an action not named): they buy
    again within ``response_within_days`` of the list date and start a fresh lifetime.
    Nothing changes on or before a list date; without ``generate.treatment`` the generator's
    output is unchanged."""

    ledger: str
    save_rates: dict[str, Annotated[float, Field(ge=0, le=1)]]
    response_within_days: Annotated[int, Field(ge=1)] = 30


class GenerateParams(_Section):
    """Synthetic purchase-history generator (the embedded default input)."""

    seed: int = 42
    n_customers: Annotated[int, Field(ge=1)] = 4000
    start_date: dt.date = dt.date(2022, 1, 1)
    end_date: dt.date = dt.date(2025, 6, 30)
    n_managers: Annotated[int, Field(ge=1)] = 6
    orders_per_year: Annotated[float, Field(gt=0)] = 6.0
    rate_shape: Annotated[float, Field(gt=0)] = 1.5
    first_year_churn_share: Annotated[float, Field(gt=0, lt=1)] = 0.35
    dropout_shape: Annotated[float, Field(gt=0)] = 2.0
    slowdown_days: Annotated[int, Field(ge=0)] = 90
    slowdown_floor: Annotated[float, Field(ge=0, le=1)] = 0.35
    mean_order_value: Annotated[float, Field(gt=0)] = 80.0
    return_rate: Annotated[float, Field(ge=0, le=1)] = 0.04
    seasonality_amplitude: Annotated[float, Field(ge=0, lt=1)] = 0.25
    seasonality_peak_day: Annotated[int, Field(ge=1, le=366)] = 340
    format: Literal["csv", "parquet"] = "csv"
    output: str = "data/raw/transactions.csv"
    truth_output: str = "data/raw/truth.parquet"
    treatment: TreatmentParams | None = None

    @model_validator(mode="after")
    def _dates_ordered(self) -> GenerateParams:
        if self.end_date <= self.start_date:
            raise ValueError(
                f"end_date ({self.end_date}) must be after start_date ({self.start_date})"
            )
        return self


class SourceParams(_Section):
    """Where raw transactions come from and how to read them."""

    path: str = "data/raw/transactions.csv"
    format: Literal["auto", "csv", "parquet"] = "auto"
    delimiter: str = ","
    header: bool = True
    quote: str = '"'
    encoding: Literal["utf-8", "utf-16", "latin-1"] = "utf-8"
    date_format: str | None = None
    decimal_separator: Literal[".", ","] = "."
    thousands_separator: Literal[",", ".", " ", "'"] | None = None
    columns: dict[str, str] = Field(
        default_factory=lambda: {c: c for c in CANONICAL_COLUMNS if c != "product_id"}
    )

    @field_validator("columns")
    @classmethod
    def _known_canonical(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(CANONICAL_COLUMNS))
        if unknown:
            raise ValueError(
                f"unknown canonical column(s) {unknown}; allowed: {list(CANONICAL_COLUMNS)}"
            )
        # amount may be left out when ingest.default_amount is set (IngestParams checks it)
        missing = [c for c in REQUIRED_COLUMNS if c not in v and c != "amount"]
        if missing:
            raise ValueError(f"required canonical column(s) {missing} have no source column")
        return v

    @model_validator(mode="after")
    def _separators_differ(self) -> SourceParams:
        if (
            self.thousands_separator is not None
            and self.thousands_separator == self.decimal_separator
        ):
            raise ValueError("thousands_separator and decimal_separator must differ")
        return self


_RULE_NAME = re.compile(r"[a-z0-9_]+")


class ExcludeRule(_Section):
    """One ``ingest.exclude`` rule: rows whose ``column`` matches are left out of the clean
    data (kept in quarantine as ``excluded_by_rule:<name>``). Exactly one kind of condition:
    ``equals``, ``in``, ``not_in`` (text, blanks trimmed; a blank cell is ""), or
    ``below`` / ``above`` (numbers or dates; either or both)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    column: str  # a column of the source file, mapped or not
    equals: str | None = None
    in_: list[str] | None = Field(default=None, alias="in")
    not_in: list[str] | None = None
    below: float | dt.date | None = None
    above: float | dt.date | None = None
    ignore_case: bool = False

    @field_validator("equals", mode="before")
    @classmethod
    def _text(cls, v: Any) -> Any:
        return v if v is None or isinstance(v, str) else str(v)

    @field_validator("in_", "not_in", mode="before")
    @classmethod
    def _texts(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [x if isinstance(x, str) else str(x) for x in v]
        return v

    @field_validator("below", "above", mode="before")
    @classmethod
    def _bound(cls, v: Any) -> Any:
        # a date written as text in YAML ("2024-01-01") is a date, not a failed number
        if isinstance(v, str):
            try:
                return dt.date.fromisoformat(v.strip())
            except ValueError:
                raise ValueError(f"{v!r} is neither a number nor an ISO date") from None
        return v

    @model_validator(mode="after")
    def _one_condition(self) -> ExcludeRule:
        if not _RULE_NAME.fullmatch(self.name):
            raise ValueError(
                f"rule name {self.name!r} must be lower-case letters, digits and _ (it becomes "
                "the quarantine reason excluded_by_rule:<name>)"
            )
        kinds = [
            k
            for k, given in (
                ("equals", self.equals is not None),
                ("in", self.in_ is not None),
                ("not_in", self.not_in is not None),
                ("below/above", self.below is not None or self.above is not None),
            )
            if given
        ]
        if len(kinds) != 1:
            raise ValueError(
                f"rule {self.name!r} needs exactly one condition: equals, in, not_in, or "
                f"below/above (given: {', '.join(kinds) or 'none'})"
            )
        bounds = [b for b in (self.below, self.above) if b is not None]
        if len({isinstance(b, dt.date) for b in bounds}) > 1:
            raise ValueError(f"rule {self.name!r}: below and above must both be numbers or dates")
        if len(bounds) == 2 and self.above < self.below:  # type: ignore[operator]
            raise ValueError(
                f"rule {self.name!r}: above ({self.above}) is below below ({self.below})"
            )
        return self

    def condition(self) -> str:
        """The condition as people write it (messages and docs)."""
        if self.equals is not None:
            return f"= {self.equals!r}"
        if self.in_ is not None:
            return f"in {self.in_}"
        if self.not_in is not None:
            return f"not in {self.not_in}"
        parts = []
        if self.below is not None:
            parts.append(f"below {self.below}")
        if self.above is not None:
            parts.append(f"above {self.above}")
        return " or ".join(parts)


class AmountRange(_Section):
    """Amounts outside [min, max] are quarantined (``amount_out_of_range``)."""

    min: float = -1e12
    max: float = 1e12

    @model_validator(mode="after")
    def _ordered(self) -> AmountRange:
        if not self.min < self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self


class IngestParams(_Section):
    source: SourceParams = SourceParams()
    as_of: dt.date | None = None
    drop_exact_duplicates: bool = True
    max_quarantine_share: Annotated[float, Field(ge=0, le=1)] = 0.05
    default_account_manager: str = "Unassigned"
    output_dir: str = "data/interim"
    # rows to leave out (cancelled orders, test customers, ...): kept in quarantine, counted
    exclude: list[ExcludeRule] = Field(default_factory=list)
    # an amount outside this range is quarantined (amount_out_of_range)
    amount_range: AmountRange = AmountRange()
    # files without money: every line counts this amount (ingest.source.columns.amount unset)
    default_amount: Annotated[float, Field(gt=0)] | None = None
    # customer names, managers, regions longer than this are cut; longer ids are quarantined
    max_text_length: Annotated[int, Field(ge=8, le=100_000)] = 200

    @field_validator("exclude")
    @classmethod
    def _unique_rules(cls, v: list[ExcludeRule]) -> list[ExcludeRule]:
        names = [r.name for r in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"exclude rule names must be unique; repeated: {dup}")
        return v

    @model_validator(mode="after")
    def _amount_source(self) -> IngestParams:
        mapped = "amount" in self.source.columns
        if mapped and self.default_amount is not None:
            raise ValueError(
                "set either ingest.source.columns.amount (a money column) or "
                "ingest.default_amount (no money column), not both"
            )
        if not mapped and self.default_amount is None:
            raise ValueError(
                "required canonical column(s) ['amount'] have no source column: map "
                "ingest.source.columns.amount, or, for a file without amounts, set "
                "ingest.default_amount (every line then counts that amount; lists say the "
                "value is not money)"
            )
        return self


class FeaturesParams(_Section):
    """Point-in-time snapshot grid, label horizon and lapsed rule."""

    input: str = "data/interim/transactions.parquet"
    output_dir: str = "data/features"
    as_of: dt.date | None = None
    horizon_days: Annotated[int, Field(ge=1)] = 90
    cutoff_step_days: Annotated[int, Field(ge=1)] = 30
    n_cutoffs: Annotated[int, Field(ge=1)] = 8
    lost_after_days: Annotated[int, Field(ge=1)] = 365
    # how many cutoffs one DuckDB query builds: all at once shares the work but holds every
    # cutoff's history; "auto" = max(1, 25M × engine.memory_limit in GB // transaction lines)
    cutoffs_per_query: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    # how the horizon is trained (churnguard.horizon): "direct" labels every cutoff with
    # horizon_days; "chained" trains a base_horizon_days model on cutoffs every
    # base_cutoff_step_days and chains it over horizon_days; "auto" = direct when the
    # direct split fits the history, else chained
    horizon_mode: Literal["auto", "direct", "chained"] = "auto"
    base_horizon_days: Annotated[int, Field(ge=1)] = 21
    base_cutoff_step_days: Annotated[int, Field(ge=1)] = 7
    # out-of-time cutoffs the probability calibrator is fitted on (spread over the year
    # before validation, each predicted by a model trained only on earlier labels);
    # 1 = the validation cutoff alone
    calibration_cutoffs: Annotated[int, Field(ge=1)] = 4
    calibration_span_days: Annotated[int, Field(ge=1)] = 365  # ... spread over this many days
    # BTYD features (churnguard.btyd_features): an MBG/NBD fitted at each cutoff on that
    # cutoff's customers only; P(alive), the shrunk purchase rate, P(no purchase in 90 days)
    btyd_features: bool = False


class TrainParams(_Section):
    """LightGBM hyper-parameters, calibration and the registry."""

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "gate_tolerance" in data:
            raise ValueError(
                "train.gate_tolerance was removed: the gate never lets a worse model replace "
                "the champion. Delete the line; the gate's settings are evaluate.primary_metric, "
                "evaluate.gate_resamples and evaluate.gate_confidence"
            )
        return data

    features_dir: str = "data/features"
    model_dir: str = "models"
    seed: int = 7
    num_leaves: Annotated[int, Field(ge=2)] = 15
    max_depth: int = 6
    learning_rate: Annotated[float, Field(gt=0)] = 0.05
    n_estimators: Annotated[int, Field(ge=1)] = 600
    min_child_samples: Annotated[int, Field(ge=1)] = 40
    subsample: Annotated[float, Field(gt=0, le=1)] = 0.8
    colsample_bytree: Annotated[float, Field(gt=0, le=1)] = 0.8
    reg_lambda: Annotated[float, Field(ge=0)] = 1.0
    early_stopping_rounds: Annotated[int, Field(ge=1)] = 50
    calibration: Literal["auto", "isotonic", "sigmoid"] = "auto"
    # after the evaluated fit, refit on every labelled cutoff with the selected rounds and
    # ship that (metadata.json records both fits; the gate judges the evaluated one)
    refit: bool = True
    # chained horizons: calibrate the chained probability on realised outcomes at the
    # calibration dates whose whole target window lies in the data
    chain_calibration: bool = True
    # model features left out (ablations); names from feature_defs.MODEL_FEATURES (and
    # feature_defs.BTYD_FEATURES when features.btyd_features adds them)
    exclude_features: list[str] = Field(default_factory=list)
    # monotone constraints by feature name: 1 = P(churn) never falls as the feature grows,
    # -1 = never rises (e.g. {recency_days: 1}); features not named are free
    monotone: dict[str, Literal[-1, 1]] = Field(default_factory=dict)
    # stack Pareto/NBD: the calibrator becomes a logistic regression on [logit model,
    # logit Pareto/NBD P(no purchase in the label horizon)] fitted on the out-of-time
    # calibration rows, the Pareto/NBD fitted at each cutoff on its history only
    stack_btyd: bool = False
    min_rows: Annotated[int, Field(ge=1)] = 200
    register_model: bool = True
    registered_model_name: str = "churnguard"
    experiment_name: str = "churnguard"


class EvaluateParams(_Section):
    """Metrics, slices and plots on the test cutoff (model and baselines side by side)."""

    model_dir: str = "models"
    # canonical transactions for the value backtest (what customers spent after the test
    # cutoff); null skips the check
    transactions: str | None = None
    list_sizes: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [50, 100, 250, 500]
    )
    contact_cost: Annotated[float, Field(ge=0)] = 10.0
    save_rate: Annotated[float, Field(ge=0, le=1)] = 0.25
    value_horizon_days: Annotated[int, Field(ge=1)] = 365
    calibration_bins: Annotated[int, Field(ge=2)] = 10
    tenure_bands_days: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [90, 365, 730]
    )
    # the gate (churnguard.gate): the metric that picks the scorer and the champion, and
    # the paired bootstrap that decides whether the model's lead over a baseline is real
    primary_metric: Literal["roc_auc", "pr_auc", "brier"] = "roc_auc"
    gate_resamples: Annotated[int, Field(ge=100, le=100_000)] = 1000
    gate_confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95


# a short action label: one line, no control characters, at most 40 characters
ShortLabel = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[^\x00-\x1f\x7f]+$")]


def _short_labels(value: str | dict[str, str] | None, what: str) -> str | dict[str, str] | None:
    """A short label for every language, or one per language (each a ShortLabel)."""
    if value is None or isinstance(value, str):
        return value
    if not value:
        raise ValueError(f"{what}: give a label, or a mapping such as {{en: ..., fa: ...}}")
    for code, text in value.items():
        _check_language(code, what)
        if not (1 <= len(text) <= 40) or re.search(r"[\x00-\x1f\x7f]", text):
            raise ValueError(f"{what}: the {code} label must be one line of 1 to 40 characters")
    return value


def label_in(
    value: str | dict[str, str] | None, name: str, language: str, fallback: str | None
) -> str:
    """The short label a ``language`` reader sees: a plain label whatever the language; from
    a mapping, the language's, else ``fallback``'s, else the English one; else the rule
    name humanised. A label never stops a run: the full action text says what to do."""
    if isinstance(value, str):
        return value
    if value:
        for code in (language, fallback, "en"):
            if code is not None and code in value:
                return value[code]
    return humanize(name)


def humanize(name: str) -> str:
    """``personal_call`` → ``Personal call``: the short label of an action that has none."""
    words = re.sub(r"[_\s]+", " ", name).strip()
    return words[:1].upper() + words[1:]


# The languages managers can read their lists and reports in (gettext catalogues in
# src/churnguard/locale/); ar and fa are written right to left.
LANGUAGES: tuple[str, ...] = ("en", "ar", "fa")
Language = Literal["en", "ar", "fa"]


def _check_language(code: object, what: str) -> str:
    if code not in LANGUAGES:
        raise ValueError(f"{what}: unknown language {code!r}; allowed: {', '.join(LANGUAGES)}")
    return str(code)


def _localized(value: str | dict[str, str], what: str) -> str | dict[str, str]:
    """A text shown to managers: one string for every language, or one per language."""
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"{what}: the text is empty")
        return value
    if not value:
        raise ValueError(f"{what}: give a text, or a mapping such as {{en: ..., fa: ...}}")
    for code, text in value.items():
        _check_language(code, what)
        if not text.strip():
            raise ValueError(f"{what}: the {code} text is empty")
    return value


def text_in(value: str | dict[str, str], language: str, fallback: str | None, what: str) -> str:
    """``value`` (a plain string, or texts by language) as shown to a ``language`` reader.

    A plain string is shown whatever the language. From a mapping: the ``language`` text,
    else the ``fallback`` language's, else :class:`ConfigError` naming ``what`` and the
    language."""
    if isinstance(value, str):
        return value
    if language in value:
        return value[language]
    if fallback is not None and fallback in value:
        return value[fallback]
    given = ", ".join(value)
    hint = (
        f"report.fallback_language is {fallback}, which it has no text in either"
        if fallback is not None
        else "or set report.fallback_language (e.g. en) to show that text instead"
    )
    raise ConfigError(
        f"{what} has no text in {language!r} (it has {given}): add `{language}: ...` under "
        f"its action; {hint}"
    )


class _ActionTexts(_Section):
    """What a playbook rule and the overflow action share: an action text and a short label,
    each one text or texts by language (the fields are declared by each subclass)."""

    name: str
    action: str | dict[str, str]
    label: ShortLabel | dict[str, str] | None

    def _where(self) -> str:
        raise NotImplementedError

    @property
    def short_label(self) -> str:
        """The English (or only) label."""
        return label_in(self.label, self.name, "en", None)

    def label_in(self, language: str, fallback: str | None = None) -> str:
        """The short label a ``language`` reader sees (see :func:`label_in`)."""
        return label_in(self.label, self.name, language, fallback)

    def action_in(self, language: str, fallback: str | None = None) -> str:
        """The action text a ``language`` reader gets (see :func:`text_in`)."""
        return text_in(self.action, language, fallback, self._where())


class ActionRule(_ActionTexts):
    """One playbook rule: conditions (all must hold) → action.

    ``action`` is one text for every manager, or texts by language (``{en: …, fa: …}``)."""

    name: str
    action: str | dict[str, str]
    # short label shown in lists, workbooks and reports (default: the name, humanised);
    # one label, or labels by language ({en: …, ar: …, fa: …})
    label: ShortLabel | dict[str, str] | None = None
    channel: str
    owner: Literal["account_manager", "automated"]
    cost: Annotated[float, Field(ge=0)]
    save_rate: Annotated[float, Field(ge=0, le=1)]
    risk_bands: list[Literal["low", "medium", "high"]] | None = None
    value_tiers: list[Literal["low", "mid", "high"]] | None = None
    segments: list[str] | None = None
    lapsed: bool | None = None
    min_tenure_days: int | None = None
    max_tenure_days: int | None = None
    min_recency_days: int | None = None
    max_recency_days: int | None = None
    min_recency_to_gap: float | None = None
    one_time_buyer: bool | None = None

    @field_validator("action")
    @classmethod
    def _action_texts(cls, v: str | dict[str, str], info: Any) -> str | dict[str, str]:
        return _localized(v, f"rule {info.data.get('name', '?')!r} action")

    @field_validator("label")
    @classmethod
    def _label_texts(cls, v: str | dict[str, str] | None, info: Any) -> str | dict[str, str] | None:
        return _short_labels(v, f"rule {info.data.get('name', '?')!r} label")

    def _where(self) -> str:
        return f"score.playbook rule {self.name!r}"


class RiskBands(_Section):
    """P(churn) thresholds: below ``medium`` is low risk, at or above ``high`` is high risk."""

    medium: Annotated[float, Field(gt=0, lt=1)] = 0.3
    high: Annotated[float, Field(gt=0, lt=1)] = 0.6

    @model_validator(mode="after")
    def _ordered(self) -> RiskBands:
        if self.medium >= self.high:
            raise ValueError(f"medium ({self.medium}) must be below high ({self.high})")
        return self


class ValueTiers(_Section):
    """Quantiles of value-if-retained among scored customers: ≥ ``high`` is high value."""

    mid: Annotated[float, Field(gt=0, lt=1)] = 0.5
    high: Annotated[float, Field(gt=0, lt=1)] = 0.8

    @model_validator(mode="after")
    def _ordered(self) -> ValueTiers:
        if self.mid >= self.high:
            raise ValueError(f"mid ({self.mid}) must be below high ({self.high})")
        return self


class OverflowAction(_ActionTexts):
    """What customers get when their manager's weekly capacity for manual actions is full."""

    name: str = "overflow_email"
    action: str | dict[str, str] = (
        "Personal email in the manager's name asking for feedback (sent automatically)"
    )
    label: ShortLabel | dict[str, str] | None = None
    channel: str = "email"
    cost: Annotated[float, Field(ge=0)] = 1.0
    save_rate: Annotated[float, Field(ge=0, le=1)] = 0.06

    @field_validator("action")
    @classmethod
    def _action_texts(cls, v: str | dict[str, str]) -> str | dict[str, str]:
        return _localized(v, "score.overflow action")

    @field_validator("label")
    @classmethod
    def _label_texts(cls, v: str | dict[str, str] | None) -> str | dict[str, str] | None:
        return _short_labels(v, "score.overflow label")

    def _where(self) -> str:
        return f"score.overflow ({self.name!r})"


class ScoreParams(_Section):
    """Batch scoring, value, playbook and list sizes."""

    transactions: str = "data/interim/transactions.parquet"
    output_root: str = "scores"
    as_of: dt.date | None = None
    value_horizon_days: Annotated[int, Field(ge=1)] = 365
    risk_bands: RiskBands = RiskBands()
    value_tiers: ValueTiers = ValueTiers()
    manager_capacity_per_week: Annotated[int, Field(ge=0)] = 25
    overflow: OverflowAction = OverflowAction()
    explain_top: Annotated[int, Field(ge=0, le=10)] = 3
    # reasons cost ~0.3 ms per customer (TreeSHAP): every manual action is explained, then
    # automated actions best-first until this many customers in all; null = every listed one
    explain_max_customers: Annotated[int, Field(ge=0)] | None = 100_000
    playbook: list[ActionRule] = Field(default_factory=list)
    # share of the customers who would get each action held out as a randomised control
    # group (reproducible: SHA-256 of list date and customer id); 0 = no control group
    control_share: Annotated[float, Field(ge=0, lt=1)] = 0.1
    # an empty playbook gives every customer "no action": refused unless meant
    allow_empty_playbook: bool = False
    # refuse (exit 3) an as-of date more than this many days after the last transaction:
    # every customer would look silent for that long (--allow-stale scores anyway, warned)
    max_days_after_data: Annotated[int, Field(ge=0)] = 30
    # warnings carried by every list (summary.json, report, --json), each with what to do
    warn_below_roc_auc: Annotated[float, Field(ge=0, le=1)] = 0.6
    warn_band_share: Annotated[float, Field(gt=0, le=1)] = 0.8
    warn_champion_age_days: Annotated[int, Field(ge=1)] = 120
    drift_psi_threshold: Annotated[float, Field(gt=0)] = 0.25
    # the language each manager reads their list in (manager name as in the data: language);
    # managers not named here read report.language
    manager_languages: dict[str, str] = Field(default_factory=dict)

    @field_validator("manager_languages")
    @classmethod
    def _known_languages(cls, v: dict[str, str]) -> dict[str, str]:
        for manager, code in v.items():
            _check_language(code, f"manager {manager!r}")
        return v

    @field_validator("playbook")
    @classmethod
    def _unique_names(cls, v: list[ActionRule]) -> list[ActionRule]:
        names = [r.name for r in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"playbook rule names must be unique; repeated: {dup}")
        for language in LANGUAGES:
            labels = [r.label_in(language).casefold() for r in v]
            dup = sorted({n for n in labels if labels.count(n) > 1})
            if dup:
                raise ValueError(
                    f"playbook labels must be unique (a workbook maps each label to its "
                    f"action); repeated in {language}: {dup}"
                )
        return v


class ReportParams(_Section):
    """What managers read: language, local number and date formats, CRR definition."""

    active_within_days: Annotated[int, Field(ge=1)] = 180
    # language of the summary report and of risk_list.csv's texts; each manager's own list
    # is in score.manager_languages' language for them, else this one
    language: Language = "en"
    # when a playbook action has no text in a reader's language, show this language's text
    # instead; null = refuse (exit 2, naming the rule and the language)
    fallback_language: Language | None = None
    # a manager's manual actions are due within this many days of the list date, best first
    due_within_days: Annotated[int, Field(ge=1, le=366)] = 7
    # ISO 4217 code shown with amounts in what people read ("" = plain numbers)
    currency: str = ""
    # dates in Persian (fa) texts: gregorian, or persian (Solar Hijri, via jdatetime)
    calendar: Literal["gregorian", "persian"] = "gregorian"
    # digits in the language's own numbering system (ar ٠١٢…, fa ۰۱۲…) in what people read
    native_digits: bool = False

    @field_validator("currency")
    @classmethod
    def _iso_currency(cls, v: str) -> str:
        if v == "":
            return v
        from babel.numbers import list_currencies

        if v not in list_currencies():
            hint = " (ISO codes are upper case)" if v.upper() in list_currencies() else ""
            raise ValueError(
                f"{v!r} is not an ISO 4217 currency code{hint}; use e.g. EUR, USD, SAR, AED, "
                'IRR, or "" for plain numbers'
            )
        return v


class OutcomesParams(_Section):
    """The outcome ledger and the measured-uplift report."""

    # folder holding every list scored (both arms) and every outcome import; null = score
    # records nothing (and `outcomes import` / `report uplift` refuse)
    ledger: str | None = None
    uplift_dir: str = "outcomes/uplift"  # where `report uplift` writes uplift.csv, uplift.html
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95  # two-sided interval level


class BacktestParams(_Section):
    """``churnguard backtest``: the whole pipeline at past as-of dates, against baselines."""

    output_dir: str = "backtests"  # results go to <output_dir>/<name>/ (--output-dir overrides)
    resamples: Annotated[int, Field(ge=100, le=100_000)] = 1000  # paired bootstrap of customers
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    # BG/NBD and Pareto/NBD baselines (pymc-marketing, the `bench` extra; --no-btyd skips)
    btyd: bool = True
    experiment_name: str = "churnguard-backtest"  # the MLflow experiment of backtest runs


class Params(_Section):
    """The whole of ``params.yaml``."""

    engine: EngineParams = EngineParams()
    generate: GenerateParams = GenerateParams()
    ingest: IngestParams = IngestParams()
    features: FeaturesParams = FeaturesParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    score: ScoreParams = ScoreParams()
    report: ReportParams = ReportParams()
    outcomes: OutcomesParams = OutcomesParams()
    backtest: BacktestParams = BacktestParams()


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Walk ``loc`` through nested models and list the keys allowed at its parent."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        # unwrap list[Model] / Model | None
        for arg in (ann, *getattr(ann, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                current = arg
                break
            for sub in getattr(arg, "__args__", ()):
                if isinstance(sub, type) and issubclass(sub, BaseModel):
                    current = sub
                    break
    return sorted(getattr(current, "model_fields", {}))


def format_validation_error(exc: ValidationError, source: str, model: type[BaseModel]) -> str:
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "(root)"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc)
            lines.append(f"  - unknown key '{key}'; allowed keys here: {', '.join(allowed)}")
        else:
            given = err.get("input")
            shown = "" if isinstance(given, dict | list) else f" (got {given!r})"
            lines.append(f"  - key '{key}': {err['msg']}{shown}")
    return "\n".join(lines)


def parse_params(
    data: dict[str, Any] | None, source: str = "params.yaml", require: tuple[str, ...] = ()
) -> Params:
    """Validate a mapping as :class:`Params`; raise :class:`ConfigError` naming the key.

    ``require`` names the sections the caller reads: each must be present (a section left
    out would silently run on defaults, e.g. scoring with no playbook). A ``score`` section
    needs a non-empty playbook unless ``score.allow_empty_playbook: true``.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: top level must be a mapping of sections, got {type(data).__name__}"
        )
    if require and not data:
        raise ConfigError(
            f"{source}: the file is empty; it needs the section(s) {', '.join(require)} "
            "(copy them from the project's params.yaml)"
        )
    try:
        params = Params.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, Params)) from None
    missing = [name for name in require if not isinstance(data.get(name), dict)]
    if missing:
        raise ConfigError(
            f"{source}: missing section(s) {', '.join(missing)}: this command reads them, and "
            "running on built-in defaults instead would hide the mistake (copy them from the "
            "project's params.yaml)"
        )
    check_languages(params, source)
    if "score" in require and not params.score.playbook and not params.score.allow_empty_playbook:
        raise ConfigError(
            f"{source}: key 'score.playbook' is empty, so no customer would get an action. Add "
            "rules (see the project's params.yaml), or set score.allow_empty_playbook: true to "
            "write lists of risk only"
        )
    return params


def reader_languages(params: Params) -> dict[str, list[str]]:
    """Every language someone reads, with who: the report's language, then each manager's."""
    readers: dict[str, list[str]] = {params.report.language: ["report.language"]}
    for manager, code in params.score.manager_languages.items():
        readers.setdefault(code, []).append(f"manager {manager!r}")
    return readers


def check_languages(params: Params, source: str = "params.yaml") -> None:
    """Before any work: every playbook action has a text (or a fallback) in every language
    someone reads, and a Persian calendar has a Persian reader. :class:`ConfigError` names
    the rule, the language and who reads it."""
    sp, rp = params.score, params.report
    readers = reader_languages(params)
    for code, who in readers.items():
        for rule in [*sp.playbook, sp.overflow]:
            try:
                rule.action_in(code, rp.fallback_language)
            except ConfigError as exc:
                raise ConfigError(f"{source}: {exc} (read by {', '.join(who)})") from None
    if rp.calendar == "persian" and "fa" not in readers:
        raise ConfigError(
            f"{source}: report.calendar is persian, but nobody reads Persian (fa): the Solar "
            "Hijri calendar is used in Persian texts only. Set report.language: fa, map a "
            "manager to fa in score.manager_languages, or set report.calendar: gregorian"
        )


def load_params(path: str | Path = "params.yaml", require: tuple[str, ...] = ()) -> Params:
    """Read and validate ``params.yaml``; ``require`` as in :func:`parse_params`."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: params file not found (pass --params PATH)")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the params file: {exc}") from None
    return parse_params(data, str(p), require)
