"""The weekly HTML report: self-contained, escaped, deterministic, robust to empty inputs."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import pytest

from churnguard.report import render_html

HOSTILE = "<script>alert(1)</script>"
PERSIAN = "مریم حسینی"
ARABIC = "محمد العلي"
QUOTES = 'Jo "quotes" & ampersands'

SECTIONS = (
    "Key figures",
    "Risk distribution",
    "Value at risk",
    "Actions by rule and owner",
    "Top 20 customers by expected net benefit",
    "Biggest movers",
    "Customer retention rate (CRR)",
    "How to read this",
)

MANAGER_FA = "رضا کریمی"
MGR = "account_manager"
AUTO = "automated"

# id, name, manager, segment, p_churn, value_if_retained, rule, action, owner, benefit, change
# fmt: off
CUSTOMERS = [
    ("C01", "Alice Martin", "Sara", "champions", 0.12, 5200.0, "none", "", "", 0.0, ""),
    ("C02", PERSIAN, MANAGER_FA, "at_risk", 0.81, 9400.0, "call", "Call", MGR, 1803.2, "new"),
    ("C03", ARABIC, MANAGER_FA, "at_risk", 0.66, 3100.0, "call", "Call", MGR, 451.5, "escalated"),
    ("C04", HOSTILE, "Sara", "hibernating", 0.92, 800.0, "email", "Win-back", AUTO, 42.7,
     "unchanged"),
    ("C05", QUOTES, "Tom <b>", "loyal", 0.35, 12000.0, "gift", "Gift", MGR, 740.0,
     "de-escalated"),
    ("C06", "Bob Stone", "Tom <b>", "loyal", 0.05, 2500.0, "none", "", "", 0.0, ""),
    ("C07", "Chloé Dubois", "Sara", "new", 0.48, 640.0, "email", "Welcome", AUTO, 11.2, "new"),
    ("C08", "Dmitri Ivanov", "Sara", "hibernating", 0.99, 150.0, "email", "Win-back", AUTO, 2.1,
     "unchanged"),
    ("C09", "Eve Park", "Tom <b>", "champions", 0.21, 30500.0, "call", "Call", MGR, 1551.0, "new"),
    ("C10", "Fatima Zahra", MANAGER_FA, "at_risk", 0.57, 1234567.0, "call", "Call", MGR,
     175000.0, "escalated"),
    ("C11", "Gus Lee", "Sara", "new", 0.0, 90.0, "none", "", "", 0.0, ""),
    ("C12", "Hana Sato", "Tom <b>", "loyal", 1.0, 400.0, "email", "Win-back", AUTO, 18.0, "new"),
]
# fmt: on


def scored_frame() -> pd.DataFrame:
    cols = [
        "customer_id", "customer_name", "account_manager", "rfm_segment", "p_churn",
        "value_if_retained", "rule", "action", "owner", "expected_net_benefit", "change",
    ]  # fmt: skip
    df = pd.DataFrame(CUSTOMERS, columns=cols)
    df["region"] = "EU"
    # the p > 0.9 rows are lapsed: as score_frame makes them, no P(churn), no value at risk
    df["lapsed"] = [1 if p > 0.9 else 0 for p in df["p_churn"]]
    df.loc[df["lapsed"] == 1, "p_churn"] = float("nan")
    df["risk_band"] = pd.cut(df["p_churn"], [-1, 0.3, 0.6, 2], labels=["low", "medium", "high"])
    df["risk_band"] = df["risk_band"].astype(str).where(df["lapsed"] == 0, "lapsed")
    df["value_at_risk"] = (df["p_churn"] * df["value_if_retained"]).round(2)
    df["value_tier"] = ["high" if v > 5000 else "low" for v in df["value_if_retained"]]
    df["on_list"] = df["rule"] != "none"
    df["reasons"] = "recency 120 days > 3× usual gap; orders_90d fell"
    return df


def summary(scored: pd.DataFrame) -> dict[str, Any]:
    on = scored[scored["on_list"]]
    return {
        "customers_scored": len(scored),
        "customers_on_lists": len(on),
        "manual_actions": int((on["owner"] == "account_manager").sum()),
        "automated_actions": int((on["owner"] == "automated").sum()),
        "overflowed": 1,
        "value_at_risk_total": float(scored["value_at_risk"].sum()),
        "expected_net_benefit_total": float(on["expected_net_benefit"].sum()),
        "risk_band_counts": {
            b: int((scored["risk_band"] == b).sum()) for b in ("low", "medium", "high", "lapsed")
        },
        "lapsed": int(scored["lapsed"].sum()),
    }


def make_ctx() -> dict[str, Any]:
    scored = scored_frame()
    prev = {"C02": 0.52, "C03": 0.70, "C04": 0.91, "C05": 0.20, "C09": 0.45, "C10": 0.10}
    movers = scored[scored["customer_id"].isin(prev)][
        ["customer_id", "customer_name", "account_manager", "p_churn"]
    ].assign(p_prev=lambda f: f["customer_id"].map(prev))
    movers["delta"] = movers["p_churn"] - movers["p_prev"]
    return {
        "as_of": "2024-06-03",
        "model": "models:/churnguard/3",
        "horizon_days": 90,
        "value_horizon_days": 365,
        "currency": "EUR",
        "summary": summary(scored),
        "scored": scored,
        "movers": movers,
        "recovered": pd.DataFrame(
            {"customer_id": ["C99"], "customer_name": ["Zoë Back"], "account_manager": ["Sara"]}
        ),
        "crr": pd.DataFrame(
            {
                "period": ["2024-02", "2024-03", "2024-04", "2024-05"],
                "crr_pct": [81.25, 79.5, None, 84.0],
                "churn_rate_pct": [18.75, 20.5, None, 16.0],
                "customers_start": [1600, 1650, 0, 1700],
                "customers_end": [1650, 1700, 1680, 1720],
                "new_customers": [350, 388, 1680, 292],
                "lost_customers": [300, 338, 0, 272],
            }
        ),
        "crr_definition": "CRR = (E - N) / S x 100 over customers active in 90 days.",
    }


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(make_ctx())


def test_page_is_self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in page
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower()
    assert "src=" not in page.lower()
    assert "<link" not in page.lower() and "@import" not in page and "url(" not in page


def test_hostile_and_quoted_names_are_escaped(page: str) -> None:
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and HOSTILE not in page
    assert "Jo &#34;quotes&#34; &amp; ampersands" in page and QUOTES not in page
    assert "Tom &lt;b&gt;" in page and "Tom <b>" not in page


def test_rtl_names_are_verbatim_and_isolated_in_cells_of_the_page_direction(page: str) -> None:
    assert PERSIAN in page and ARABIC in page
    assert f"<td><bdi>{PERSIAN}</bdi></td>" in page
    assert f'<div class="l" title="{MANAGER_FA}"><bdi>{MANAGER_FA}</bdi></div>' in page
    # a cell that took the name's direction would align right in a left-to-right table
    assert 'dir="auto"' not in page


@pytest.mark.parametrize("heading", SECTIONS)
def test_each_section_heading_is_present(page: str, heading: str) -> None:
    assert f"<h2>{heading}</h2>" in page


def test_header_states_as_of_model_and_label(page: str) -> None:
    assert "2024-06-03" in page and "models:/churnguard/3" in page
    assert "churn = no purchase in the next 90 days" in page


def test_numbers_have_separators_and_one_decimal_percentages(page: str) -> None:
    assert "€703,703" in page  # 0.57 × 1,234,567 as value at risk
    assert "€175,000" in page
    assert "57.0%" in page and "81.2%" in page and "€1,234,567" not in page


def test_histogram_has_ten_bins_counting_every_active_customer(page: str) -> None:
    svg = page.split("<h2>Risk distribution</h2>", 1)[1].split("</svg>", 1)[0]
    counts = [int(c) for c in re.findall(r": ([\d,]+) customers?</title>", svg)]
    assert len(counts) == 10 and sum(counts) == len(CUSTOMERS) - 3  # the 3 lapsed left out
    assert counts[0] == 2 and counts[9] == 0  # p = 0.0 and 0.05; the p > 0.9 rows are lapsed
    assert "3 lapsed customers are left out" in svg


def test_top_customers_are_sorted_by_net_benefit(page: str) -> None:
    top = page.split("<h2>Top 20", 1)[1].split("</section>", 1)[0]
    order = [top.index(n) for n in ("Fatima Zahra", PERSIAN, "Eve Park", QUOTES.split()[0])]
    assert order == sorted(order)
    assert "Alice Martin" not in top  # not on a list


def test_movers_show_risers_and_fallers_and_recovered(page: str) -> None:
    movers = page.split("<h2>Biggest movers</h2>", 1)[1].split("</section>", 1)[0]
    rose, fell = movers.split("Risk fell most", 1)
    assert "Fatima Zahra" in rose and "+47.0 pp" in rose
    assert "Eve Park" in fell and "-24.0 pp" in fell
    assert "Zoë Back" in movers


def test_crr_section_states_definition_and_skips_undefined_periods(page: str) -> None:
    crr = page.split("<h2>Customer retention rate (CRR)</h2>", 1)[1].split("</section>", 1)[0]
    assert "CRR = (E - N) / S x 100" in crr
    assert crr.count("<polyline") == 1  # 2024-04 has no CRR: the line breaks there
    assert crr.count("<circle") == 3 and "1,650" in crr


def test_output_is_byte_identical_for_identical_input() -> None:
    assert render_html(make_ctx()) == render_html(make_ctx())


def test_missing_previous_list_and_crr() -> None:
    ctx = make_ctx() | {"movers": None, "recovered": None, "crr": None, "crr_definition": ""}
    page = render_html(ctx)
    assert "no previous list" in page and "CRR is not available" in page
    for heading in SECTIONS:
        assert f"<h2>{heading}</h2>" in page


def test_empty_movers_frames_count_as_no_previous_list() -> None:
    page = render_html(make_ctx() | {"movers": pd.DataFrame(), "recovered": pd.DataFrame()})
    assert "no previous list" in page


def test_no_customers_on_lists() -> None:
    scored = scored_frame().assign(on_list=False, rule="none", action="", owner="")
    page = render_html(make_ctx() | {"scored": scored, "summary": summary(scored)})
    assert page.count("No customers on the lists this week.") == 2
    assert "<h2>Risk distribution</h2>" in page


def test_empty_scored_frame() -> None:
    empty = scored_frame().iloc[0:0]
    ctx = make_ctx() | {"scored": empty, "summary": summary(empty), "movers": None}
    page = render_html(ctx)
    assert "No customers scored." in page
    for heading in SECTIONS:
        assert f"<h2>{heading}</h2>" in page


def test_bare_context_without_frames_renders() -> None:
    page = render_html({"as_of": "2024-06-03", "model": "models/ (md5 1a2b…)", "currency": ""})
    assert "md5 1a2b…" in page and "–" in page


def test_templates_ship_with_the_package() -> None:
    """PackageLoader finds the templates through the package, so an installed churnguard
    renders without the source tree: pyproject.toml's package data must cover them."""
    import fnmatch
    import tomllib
    from importlib.resources import files
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    data = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = data["tool"]["setuptools"]["package-data"]["churnguard"]
    shipped = [f"templates/{p.name}" for p in (files("churnguard") / "templates").iterdir()]
    assert {"templates/report.html.j2", "templates/manager.html.j2"} <= set(shipped)
    assert all(any(fnmatch.fnmatch(t, pat) for pat in patterns) for t in shipped)
