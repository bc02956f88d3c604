"""Manager-facing words and numbers that are not in a template, in one place.

What account managers read — the report pages (``templates/*.html.j2``), their workbook and
the few words written into their lists — is either in a template or here, so that
translating it (Arabic and Persian, with gettext catalogues) touches these two places only:

- :func:`translations` is the message catalogue of a language. Today it is the identity
  (English is the source language); a translation only has to return a real catalogue.
  The report's Jinja2 environment installs it (``{% trans %}``, ``_()`` in templates) and
  Python code gets its ``_`` from :func:`translator`.
- Constants are marked with :func:`N_` (``gettext_noop``) so extractors find them, and are
  translated where they are shown (a module-level ``_()`` would run before any catalogue).
- :class:`Formatter` is the one place numbers, money and percentages become text.

Codes stay codes: the CSV lists keep ``new``, ``high``, ``personal_call`` and the outcome
values below, which other programs read back; only their display goes through here.
"""

from __future__ import annotations

import gettext
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from churnguard.config import ActionRule, OverflowAction

LANGUAGES = ("en", "ar", "fa")
RTL_LANGUAGES = frozenset({"ar", "fa"})

# What a manager records in the workbook's ``outcome`` column (the drop-down). These exact
# values are read back by the outcome import: they are data, not display text.
OUTCOMES = ("reached", "no answer", "saved", "declined", "wrong contact")


def N_(message: str) -> str:  # noqa: N802 - the gettext convention
    """Mark ``message`` for translation without translating it here (``gettext_noop``)."""
    return message


def translations(language: str) -> gettext.NullTranslations:
    """The message catalogue for ``language``: the identity until catalogues exist."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; use one of {LANGUAGES}")
    return gettext.NullTranslations()


def translator(language: str) -> Callable[[str], str]:
    """``_`` for Python code that writes manager-facing text in ``language``."""
    return translations(language).gettext


def direction(language: str) -> str:
    """``rtl`` for right-to-left languages, else ``ltr`` (HTML ``dir``, sheet direction)."""
    return "rtl" if language in RTL_LANGUAGES else "ltr"


# -- codes and their display -------------------------------------------------------------

CHANGES: Mapping[str, str] = {
    "first list": N_("first list"),
    "new": N_("new"),
    "escalated": N_("escalated"),
    "de-escalated": N_("de-escalated"),
    "unchanged": N_("unchanged"),
    "recovered": N_("recovered"),
    "off list": N_("off list"),
}
RISK_BANDS: Mapping[str, str] = {
    "low": N_("low"),
    "medium": N_("medium"),
    "high": N_("high"),
    "lapsed": N_("lapsed"),
}
OWNERS: Mapping[str, str] = {
    "account_manager": N_("account manager"),
    "account manager": N_("account manager"),
    "automated": N_("automated"),
}
# the action shown for customers who left a manager's list since the last one (CSV rows)
LEFT_LIST_ACTIONS: Mapping[str, str] = {
    "recovered": N_("Bought again: thank them"),
    "off list": N_("No action this week"),
}

# the workbook's words (its contract headers — list_date, customer_id, action, contacted_on,
# outcome, note — are not here: other programs read them, so they are never translated)
WORKBOOK_HEADERS: Mapping[str, str] = {
    "rank": N_("Rank"),
    "due_date": N_("Due by"),
    "customer_name": N_("Customer"),
    "risk": N_("Risk"),
    "risk_band": N_("Risk band"),
    "value_at_risk": N_("Value at risk"),
    "expected_net_benefit": N_("Expected net benefit"),
    "action_label": N_("Action"),
    "channel": N_("Channel"),
    "reasons": N_("Why flagged"),
    "last_purchase_date": N_("Last purchase"),
    "usual_gap_days": N_("Usually orders every (days)"),
    "change": N_("Change"),
    "label": N_("Action"),
    "action_text": N_("What to do"),
    "cost": N_("Cost per customer"),
    "save_rate": N_("Assumed save rate"),
    "what_to_do": N_("What to do"),
}
WORKBOOK_TEXT: Mapping[str, str] = {
    "left_sheet": N_("Left the list"),
    "date_error_title": N_("Not a date"),
    "date_error": N_(
        "Enter the date you contacted the customer (yyyy-mm-dd), on or after the list date."
    ),
    "date_prompt_title": N_("Contacted on"),
    "date_prompt": N_("The date you reached out (yyyy-mm-dd)."),
    "outcome_error_title": N_("Choose from the list"),
    "outcome_error": N_("Pick one of: %(outcomes)s"),
    "outcome_prompt_title": N_("Outcome"),
    "outcome_prompt": N_("What happened: pick one from the list."),
}


def display(codes: Mapping[str, str], code: Any, _: Callable[[str], str]) -> str:
    """The translated display text of ``code`` (unknown codes are shown as they are)."""
    if code is None or (isinstance(code, float) and math.isnan(code)):
        return ""
    text = str(code)
    return _(codes[text]) if text in codes else text


def action_catalogue(
    playbook: list[ActionRule], overflow: OverflowAction
) -> dict[str, dict[str, Any]]:
    """Every action a list can hold, by rule name: short label, full wording, channel,
    owner, cost and assumed save rate (playbook order, the overflow action last)."""
    out: dict[str, dict[str, Any]] = {}
    for rule, owner in [*((r, r.owner) for r in playbook), (overflow, "automated")]:
        out[rule.name] = {
            "label": rule.short_label,
            "action": rule.action,
            "channel": rule.channel,
            "owner": owner,
            "cost": rule.cost,
            "save_rate": rule.save_rate,
        }
    return out


# -- numbers as text -----------------------------------------------------------------------


def missing(x: Any) -> bool:
    if x is None:
        return True
    try:
        return bool(x != x)  # NaN, NaT and pd.NA (whose comparison is NA, truthy-less)
    except TypeError:
        return True


@dataclass(frozen=True)
class Formatter:
    """Numbers, money and percentages as managers read them; ``–`` for a missing value."""

    currency: str = ""
    language: str = "en"
    dash: str = "–"

    def int(self, x: Any) -> str:
        return self.dash if missing(x) else f"{round(float(x)):,}"

    def money(self, x: Any) -> str:
        if missing(x):
            return self.dash
        text = f"{float(x):,.0f}"
        return f"{self.currency} {text}" if self.currency else text

    def pct(self, p: Any) -> str:
        """A probability in 0..1 as a percentage with one decimal."""
        return self.dash if missing(p) else f"{100 * float(p):.1f}%"

    def pct100(self, x: Any) -> str:
        """A value already in percent, with one decimal."""
        return self.dash if missing(x) else f"{float(x):.1f}%"

    def points(self, delta: Any) -> str:
        """A change of probability in percentage points, signed."""
        return self.dash if missing(delta) else f"{100 * float(delta):+.1f} pp"

    def number(self, x: Any, digits: int = 3) -> str:
        return self.dash if missing(x) else f"{float(x):.{digits}f}"

    def signed(self, x: Any, digits: int = 3) -> str:
        return self.dash if missing(x) else f"{float(x):+.{digits}f}"

    def text(self, x: Any) -> str:
        return "" if missing(x) else str(x)
