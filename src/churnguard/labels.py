"""The workbook's own words and the catalogue of actions a list can hold.

Everything else a manager reads comes from :mod:`churnguard.i18n` (message catalogues,
labels of codes, direction, the report's Jinja2 environment) and
:mod:`churnguard.localfmt` (numbers, money, percentages, dates). Constants here are
marked with :func:`~churnguard.i18n.N_` so ``pybabel extract`` finds them; they are
translated where they are shown, with the reader's catalogue.

Codes stay codes: the CSV lists and the workbook's contract columns keep ``new``,
``high``, ``personal_call`` and the outcome codes, which other programs read back; only
their display is translated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from churnguard.config import ActionRule, OverflowAction
from churnguard.i18n import N_

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


def action_catalogue(
    playbook: list[ActionRule],
    overflow: OverflowAction,
    language: str = "en",
    fallback: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Every action a list can hold, by rule name, as a ``language`` reader sees it: short
    label, full wording, channel, owner, cost and assumed save rate (playbook order, the
    overflow action last). Wording follows :meth:`ActionRule.action_in` (a missing
    language with no ``fallback`` is a :class:`~churnguard.errors.ConfigError`); labels
    follow :meth:`ActionRule.label_in`."""
    out: dict[str, dict[str, Any]] = {}
    for rule, owner in [*((r, r.owner) for r in playbook), (overflow, "automated")]:
        out[rule.name] = {
            "label": rule.label_in(language, fallback),
            "action": rule.action_in(language, fallback),
            "channel": rule.channel,
            "owner": owner,
            "cost": rule.cost,
            "save_rate": rule.save_rate,
        }
    return out
