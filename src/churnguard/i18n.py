"""Languages as data: gettext catalogues for every word a manager reads, and what the
report templates need around them (direction, ``<bdi>``, local formats).

Catalogues live in ``src/churnguard/locale/<lang>/LC_MESSAGES/churnguard.po`` (English is
the source language: its catalogue exists but needs no translations). ``make install``
compiles each ``.po`` into a ``.mo`` beside it with ``pybabel compile``; the ``.mo`` files
are build products, never committed. :func:`translations` reads the ``.mo`` when it is there
and not older than its ``.po``, and otherwise compiles the ``.po`` in memory with Babel — so
a plain ``pip install`` (no ``.mo``) and a ``.po`` edited after the install both work.
``docs/i18n.md`` gives the extract / update / compile commands. The only files this module
reads are its own package's catalogues (as ``feature_defs`` reads its SQL): it is pure.

Codes stay codes: ``risk_band``, ``change``, ``owner``, ``channel`` and the workbook's
``outcome`` values are written as they are into files other programs read back; only
their display goes through :func:`label`.
"""

from __future__ import annotations

import gettext as _gettext
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property, partial
from importlib import resources
from pathlib import Path
from typing import Any

from churnguard.config import LANGUAGES, ReportParams, ScoreParams
from churnguard.localfmt import LocalFormat, missing

DOMAIN = "churnguard"
LOCALE_DIR = "locale"
RTL_LANGUAGES = frozenset({"ar", "fa"})


def N_(message: str) -> str:  # noqa: N802 - the gettext convention
    """Mark ``message`` for extraction without translating it here (``gettext_noop``)."""
    return message


def NP_(context: str, message: str) -> str:  # noqa: N802
    """Mark ``message`` in ``context`` for extraction (``pgettext_noop``); translated later
    with :meth:`Translator.pgettext` and the same context."""
    return message


# -- catalogues --------------------------------------------------------------------------


def _check(language: str) -> None:
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; use one of {', '.join(LANGUAGES)}")


def catalogue_files(language: str) -> tuple[Any, Any]:
    """The ``.po`` (source, committed) and ``.mo`` (compiled by the install) of a language."""
    _check(language)
    folder = resources.files("churnguard").joinpath(LOCALE_DIR, language, "LC_MESSAGES")
    return folder.joinpath(f"{DOMAIN}.po"), folder.joinpath(f"{DOMAIN}.mo")


def _mo_is_current(po: Any, mo: Any) -> bool:
    if not mo.is_file():
        return False
    if isinstance(po, Path) and isinstance(mo, Path) and po.is_file():
        return mo.stat().st_mtime >= po.stat().st_mtime
    return True  # inside an archive: both come from the same build


def compile_po(po_text: bytes, language: str) -> _gettext.GNUTranslations:
    """A ``.po`` file's translations, compiled in memory as ``pybabel compile`` would
    (fuzzy and untranslated messages left out)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    catalog = read_po(io.BytesIO(po_text), locale=language, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return _gettext.GNUTranslations(buffer)


@cache
def _load(language: str) -> tuple[_gettext.GNUTranslations, str]:
    po, mo = catalogue_files(language)
    if _mo_is_current(po, mo):
        return _gettext.GNUTranslations(io.BytesIO(mo.read_bytes())), "mo"
    if not po.is_file():
        raise FileNotFoundError(
            f"the {language} message catalogue is missing from the churnguard package "
            f"({LOCALE_DIR}/{language}/LC_MESSAGES/{DOMAIN}.po): reinstall churnguard"
        )
    return compile_po(po.read_bytes(), language), "po"


def translations(language: str) -> _gettext.GNUTranslations:
    """The message catalogue of ``language`` (``en``, ``ar``, ``fa``)."""
    return _load(language)[0]


def catalogue_source(language: str) -> str:
    """``mo`` when the compiled catalogue was read, ``po`` when the ``.po`` was compiled in
    memory (no ``.mo``, or one older than its ``.po``)."""
    return _load(language)[1]


def gettext(language: str) -> Callable[[str], str]:
    """``_`` for ``language``."""
    return translations(language).gettext


def ngettext(language: str) -> Callable[[str, str, int], str]:
    """Plural-aware ``ngettext`` for ``language`` (six forms in Arabic)."""
    return translations(language).ngettext


def pgettext(language: str) -> Callable[[str, str], str]:
    """``pgettext(context, message)`` for ``language``."""
    return translations(language).pgettext


@dataclass(frozen=True)
class Translator:
    """One reader's messages and formats: what Python code that writes manager-facing text
    needs. The catalogue is read on first use, never at construction."""

    language: str = "en"
    fmt: LocalFormat = field(default_factory=LocalFormat)

    def __post_init__(self) -> None:
        _check(self.language)
        if self.fmt.language != self.language:
            raise ValueError(f"formats for {self.fmt.language!r} given to {self.language!r}")

    @cached_property
    def catalogue(self) -> _gettext.GNUTranslations:
        return translations(self.language)

    def gettext(self, message: str) -> str:
        return self.catalogue.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.catalogue.ngettext(singular, plural, n)

    def pgettext(self, context: str, message: str) -> str:
        return self.catalogue.pgettext(context, message)


def translator(
    language: str = "en",
    *,
    native_digits: bool = False,
    currency: str = "",
    calendar: str = "gregorian",
) -> Translator:
    """A :class:`Translator` for ``language`` with its local formats."""
    fmt = LocalFormat(
        language=language,
        currency=currency,
        calendar=calendar,  # type: ignore[arg-type]
        native_digits=native_digits,
    )
    return Translator(language, fmt)


def reader(rp: ReportParams, language: str | None = None) -> Translator:
    """The :class:`Translator` of someone reading ``language`` (default
    ``report.language``) with the formats ``report`` configures."""
    return translator(
        language or rp.language,
        native_digits=rp.native_digits,
        currency=rp.currency,
        calendar=rp.calendar,
    )


# -- who reads what ---------------------------------------------------------------------


def manager_language(manager: str, sp: ScoreParams, rp: ReportParams) -> str:
    """The language ``manager`` reads: ``score.manager_languages``, else ``report.language``."""
    return sp.manager_languages.get(manager, rp.language)


def manager_languages(managers: Iterable[str], sp: ScoreParams, rp: ReportParams) -> dict[str, str]:
    """Each manager's language, in name order."""
    return {m: manager_language(m, sp, rp) for m in sorted(set(managers))}


def unmatched_managers(managers: Iterable[str], sp: ScoreParams) -> list[str]:
    """Names in ``score.manager_languages`` that match no manager in the data (a typo, or
    the same name written with other characters, e.g. Arabic ي for Persian ی)."""
    return sorted(set(sp.manager_languages) - set(managers))


# -- direction ----------------------------------------------------------------------------


def direction(language: str) -> str:
    """``rtl`` for Arabic and Persian, else ``ltr`` (HTML ``dir``, a sheet's direction)."""
    _check(language)
    return "rtl" if language in RTL_LANGUAGES else "ltr"


def bdi(text: Any) -> Any:
    """``text`` escaped inside ``<bdi>``: an embedded Latin id or name, or a Persian name in
    an English page, keeps its own direction and does not reorder its neighbours."""
    from markupsafe import Markup

    if missing(text):
        return Markup("")
    return Markup("<bdi>{}</bdi>").format(text)


# -- codes and their display ---------------------------------------------------------------

# kind → (message context, code → English display text). The contexts keep short words
# apart ("new" customer in a change column, "high" risk vs "high" value) for translators.
LABELS: Mapping[str, tuple[str, Mapping[str, str]]] = {
    "risk_band": (
        "risk band",
        {
            "low": NP_("risk band", "low"),
            "medium": NP_("risk band", "medium"),
            "high": NP_("risk band", "high"),
            "lapsed": NP_("risk band", "lapsed"),
        },
    ),
    "value_tier": (
        "value tier",
        {
            "low": NP_("value tier", "low"),
            "mid": NP_("value tier", "mid"),
            "high": NP_("value tier", "high"),
        },
    ),
    "change": (
        "change",
        {
            "new": NP_("change", "new"),
            "escalated": NP_("change", "escalated"),
            "de-escalated": NP_("change", "de-escalated"),
            "unchanged": NP_("change", "unchanged"),
            "first list": NP_("change", "first list"),
            "recovered": NP_("change", "recovered"),
            "off list": NP_("change", "off list"),
        },
    ),
    "owner": (
        "owner",
        {
            "account_manager": NP_("owner", "account manager"),
            "account manager": NP_("owner", "account manager"),  # as the CSV writes it
            "automated": NP_("owner", "automated"),
        },
    ),
    "channel": (
        "channel",
        {
            "phone": NP_("channel", "phone"),
            "email": NP_("channel", "email"),
            "mail": NP_("channel", "mail"),
            "sms": NP_("channel", "SMS"),
            "meeting": NP_("channel", "meeting"),
            "visit": NP_("channel", "visit"),
        },
    ),
    # what a manager records after acting (the workbook's drop-down): the codes are data,
    # read back by the outcome import; the labels are what the drop-down shows
    "outcome": (
        "outcome",
        {
            "reached": NP_("outcome", "reached"),
            "no answer": NP_("outcome", "no answer"),
            "saved": NP_("outcome", "saved"),
            "declined": NP_("outcome", "declined"),
            "wrong contact": NP_("outcome", "wrong contact"),
        },
    ),
}
OUTCOMES: tuple[str, ...] = tuple(LABELS["outcome"][1])

# the recommended_action of a customer who left a manager's list since the last one
LEFT_LIST_ACTIONS: Mapping[str, str] = {
    "recovered": N_("Bought again: thank them"),
    "off list": N_("No action this week"),
}


def label(kind: str, code: Any, language: str) -> str:
    """The display text of a code (``label("risk_band", "high", "fa")`` → ``بالا``).
    Unknown codes (a channel of your own) are shown as they are; a missing one as ""."""
    if missing(code):
        return ""
    context, texts = LABELS[kind]
    text = str(code)
    if text not in texts:
        return text
    return translations(language).pgettext(context, texts[text])


def labels(kind: str, language: str) -> dict[str, str]:
    """Every code of ``kind`` with its display text in ``language``."""
    return {code: label(kind, code, language) for code in LABELS[kind][1]}


def left_list_action(change: str, language: str) -> str:
    """The action shown for a customer who left the list (``recovered`` / ``off list``)."""
    return translations(language).gettext(LEFT_LIST_ACTIONS[change])


def parse_outcome(text: Any) -> str | None:
    """An outcome as a manager entered it — its code or its label in any language, spaces
    and case ignored — as its code; ``None`` for an empty cell or an unknown value."""
    if missing(text):
        return None
    wanted = " ".join(str(text).split()).casefold()
    if not wanted:
        return None
    for language in LANGUAGES:
        for code, shown in labels("outcome", language).items():
            if wanted in (code.casefold(), " ".join(shown.split()).casefold()):
                return code
    return None


# -- templates ------------------------------------------------------------------------------


def jinja_environment(
    language: str,
    loader: Any = None,
    fmt: LocalFormat | None = None,
    **options: Any,
) -> Any:
    """A Jinja2 environment for pages in ``language``: autoescaped, with the language's
    catalogue installed (``_()``, ``gettext``, ``ngettext``, ``pgettext``, ``{% trans %}``;
    new-style, so ``_("%(n)s days", n=3)`` formats and escapes), ``lang`` and ``dir``
    globals, ``label(kind, code)``, and filters for local formats: ``bdi``, ``integer``,
    ``number``, ``money``, ``percent``, ``date``, ``month``, ``digits``."""
    import jinja2

    fmt = fmt or LocalFormat(language=language)
    if fmt.language != language:
        raise ValueError(f"formats for {fmt.language!r} given to a {language!r} environment")
    env = jinja2.Environment(
        loader=loader, autoescape=True, extensions=["jinja2.ext.i18n"], **options
    )
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(
        lang=language,
        dir=direction(language),
        label=partial(label, language=language),
    )
    env.filters.update(
        bdi=bdi,
        integer=fmt.int,
        number=fmt.number,
        money=fmt.money,
        percent=fmt.pct,
        date=fmt.date,
        month=fmt.month,
        digits=fmt.digits,
    )
    return env


# -- warnings -------------------------------------------------------------------------------

# Each warning churnguard puts in summary.json and at the top of the report: its message
# (Python ``{name}`` placeholders) and how each parameter is shown — ``text`` as it is,
# ``label`` through the catalogue (a scorer's name), ``int`` without grouping, ``num3`` with
# three decimals, ``pct0`` a share as a whole percentage, ``date`` the reader's date (ISO in
# English), ``iso`` an ISO date that must stay one (a command-line value), ``plain`` a
# params.yaml value as written, ``en`` an English detail shown to English readers only.
NOTICES: Mapping[str, tuple[str, Mapping[str, str]]] = {
    "not_evaluated": (
        N_(
            "The scorer ({label}) has no evaluation (eval/metrics.json beside the model folder, "
            "or metrics on its MLflow run): how it compares with the simple baselines is "
            "unknown. Run `churnguard evaluate` before trusting these lists."
        ),
        {"label": "label"},
    ),
    "baseline_ranks": (
        N_(
            "These lists are ranked by a simple baseline ({label}), not by the LightGBM model: "
            "on the test cutoff the model did not beat it by a margin the data can "
            "confirm{detail}. Improve the model or the data before relying on the model's "
            "ranking."
        ),
        {"label": "label", "detail": "en"},
    ),
    "auc_undefined": (
        N_(
            "The {label}'s test ROC-AUC is undefined (one class on the test cutoff): its "
            "ranking is unproven."
        ),
        {"label": "label"},
    ),
    "no_lead": (
        N_(
            "The model does not rank customers better than the best simple baseline "
            "({baseline}: ROC-AUC {baseline_auc} against the model's {auc} on the test "
            "cutoff): treat the order of these lists as no better than that rule."
        ),
        {"baseline": "label", "baseline_auc": "num3", "auc": "num3"},
    ),
    "weak_auc": (
        N_(
            "The {label}'s test ROC-AUC is {auc}, barely better than chance (0.5; "
            "score.warn_below_roc_auc is {threshold}): these lists are weak evidence of who "
            "will leave."
        ),
        {"label": "label", "auc": "num3", "threshold": "plain"},
    ),
    "data_too_old": (
        N_(
            "The data ends {days} days before the as-of date {as_of} (last transaction "
            "{last}), more than the {horizon}-day churn horizon: every customer looks silent "
            "for that long, so risks and lists are overstated. Refresh the data (churnguard "
            "ingest) or score at --as-of {last_iso}."
        ),
        {"days": "int", "as_of": "date", "last": "date", "horizon": "int", "last_iso": "iso"},
    ),
    "data_old": (
        N_(
            "The data ends {days} days before the as-of date {as_of} (last transaction "
            "{last}); purchases since then are not seen, so risks are somewhat overstated."
        ),
        {"days": "int", "as_of": "date", "last": "date"},
    ),
    "drift_unmeasured": (
        N_(
            "Drift is not measured: the scorer has no training profile (drift_reference.json; "
            "models trained before this churnguard version). Retrain to measure it."
        ),
        {},
    ),
    "drift": (
        N_(
            "The customers scored now differ from those the scorer was trained on: {n} "
            "feature(s) drifted beyond PSI {threshold} (score.drift_psi_threshold): {shifts}. "
            "Retrain on recent data (`dvc repro`) before trusting the ranking."
        ),
        {"n": "int", "threshold": "plain", "shifts": "text"},
    ),
    "band_share": (
        N_(
            "{share} of the active customers scored are in the '{band}' band "
            "(score.warn_band_share is {limit}): the scores barely separate customers. Check "
            "the model quality above and score.risk_bands."
        ),
        {"share": "pct0", "band": "band", "limit": "pct0"},
    ),
    "scorer_age": (
        N_(
            "The scorer was last checked on outcomes up to {newest}, {age} days before the "
            "as-of date (score.warn_champion_age_days is {limit}): retrain and evaluate on "
            "recent data (`dvc repro`), then promote."
        ),
        {"newest": "date", "age": "int", "limit": "int"},
    ),
    "unmatched_managers": (
        N_(
            "score.manager_languages names {names}, who manage no customer in this run: check "
            "the spelling against account_manager in the data (their lists are in "
            "report.language)"
        ),
        {"names": "text"},
    ),
}


# the scorers' names, as warnings and page headers show them (churnguard.baselines)
SCORER_NAMES = (
    N_("LightGBM model"),
    N_("days since last purchase"),
    N_("logistic regression"),
    N_("RFM score"),
    N_("no purchase in 180 days"),
)


def notice_text(code: str, params: Mapping[str, Any], tr: Translator) -> str:
    """The warning ``code`` with ``params`` as ``tr``'s reader reads it."""
    message, kinds = NOTICES[code]
    fmt = tr.fmt
    shown: dict[str, str] = {}
    for name, kind in kinds.items():
        value = params.get(name)
        if kind == "label":
            shown[name] = tr.gettext(str(value))
        elif kind == "band":
            shown[name] = label("risk_band", value, tr.language)
        elif kind == "int":
            shown[name] = fmt.int(value, group=False)
        elif kind == "num3":
            shown[name] = fmt.number(value, 3)
        elif kind == "pct0":
            shown[name] = fmt.pct(value, 0)
        elif kind == "date":
            shown[name] = fmt.day(value)
        elif kind == "en":
            shown[name] = str(value or "") if tr.language == "en" else ""
        elif kind == "plain":
            shown[name] = fmt.digits(str(value))
        else:  # text, iso: as they are
            shown[name] = str(value)
    return tr.gettext(message).format(**shown)


class Notice(str):
    """A warning: its English text (what ``summary.json`` keeps, a machine file) that also
    carries its ``code`` and ``params``, so a page can say it in its reader's language
    (:func:`notice_text`)."""

    code: str
    params: dict[str, Any]

    def __new__(cls, code: str, **params: Any) -> Notice:
        plain = {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in params.items()}
        self = super().__new__(cls, notice_text(code, plain, translator("en")))
        self.code, self.params = code, plain
        return self


def notice_codes(warnings: Iterable[str]) -> list[dict[str, Any] | None]:
    """``summary.json``'s ``warning_codes``: for each warning, its code and parameters
    (``None`` for a warning given as plain text)."""
    return [
        {"code": w.code, "params": w.params} if isinstance(w, Notice) else None for w in warnings
    ]
