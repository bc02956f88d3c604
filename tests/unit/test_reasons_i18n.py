"""Reasons in the manager's language: English exactly as before, Arabic and Persian with
their plural forms and number formats; each manager's list in their own language while
codes, numbers and dates stay machine-readable. A real (tiny) LightGBM model, no mocks."""

from __future__ import annotations

import math
from collections import namedtuple

import pandas as pd
import pytest

from churnguard.config import ActionRule, OverflowAction, ReportParams, ScoreParams
from churnguard.explain import PHRASE_COLUMNS, phrase, top_reasons
from churnguard.i18n import translator
from churnguard.modeling import ChurnModel
from churnguard.scoring import compare_with_previous, manager_lists, present_columns, score_frame

Row = namedtuple("Row", PHRASE_COLUMNS)
BASE = dict(
    recency_days=128.0,
    gap_mean_days=25.0,
    gap_std_days=6.4,
    spend_90d=0.0,
    spend_prev_90d=0.0,
    orders_90d=0.0,
    orders_prev_90d=0.0,
    purchase_days=42.0,
    tenure_days=1134.0,
    monetary_total=6798.2,
    avg_order_value=157.4,
    returned_share=0.12,
    distinct_products=1.0,
)


def row(**kw) -> Row:
    return Row(**{**BASE, **kw})


# group, row changes, English (as churnguard has always written it), Arabic, Persian
# fmt: off
CASES = [
    ("recency", {}, "No order for 128 days; usually orders every 25 days",
     "لا طلبات منذ 128 يومًا؛ وعادةً يطلب كل 25 يومًا",
     "128 روز است که سفارشی نداده؛ معمولاً هر 25 روز یک بار سفارش می\u200cدهد"),
    ("recency", {"recency_days": 1.0, "gap_mean_days": 2.0},
     "No order for 1 day; usually orders every 2 days",
     "لا طلبات منذ يوم واحد؛ وعادةً يطلب كل يومين",
     "1 روز است که سفارشی نداده؛ معمولاً هر 2 روز یک بار سفارش می\u200cدهد"),
    ("recency", {"gap_mean_days": math.nan, "recency_days": 500.0},
     "No order for 500 days since the first and only purchase",
     "لم يطلب شيئًا منذ شرائه الوحيد قبل 500 يوم",
     "از تنها خریدش 500 روز می\u200cگذرد و سفارش دیگری نداده است"),
    ("recency", {"recency_days": math.nan}, "Recency unknown",
     "تاريخ آخر طلب غير معروف", "تاریخ آخرین سفارش معلوم نیست"),
    ("rhythm", {}, "Irregular buyer: gaps of 25 days on average, give or take 6 days",
     "يشتري بغير انتظام: يفصل بين طلباته 25 يومًا في المتوسط، بزيادة أو نقصان 6 أيام",
     "خرید نامنظم: به\u200cطور میانگین هر 25 روز یک بار، با نوسان حدود 6 روز"),
    ("rhythm", {"gap_std_days": math.nan}, "Orders about every 25 days",
     "يطلب كل 25 يومًا تقريبًا", "تقریباً هر 25 روز یک بار سفارش می\u200cدهد"),
    ("spend_trend", {"spend_prev_90d": 1234.5},
     "No spend in the last 90 days, after 1,234 in the 90 before",
     "لا مشتريات في آخر 90 يومًا، بعد 1,234 في الـ90 يومًا التي سبقتها",
     "در 90 روز گذشته خریدی نداشته، در حالی که در 90 روز پیش از آن 1,234 خرید کرده بود"),
    ("spend_trend", {"spend_prev_90d": 200.0, "spend_90d": 124.0},
     "Spend in the last 90 days down 38% on the 90 before",
     "انخفض إنفاقه في آخر 90 يومًا بنسبة 38\u200e%\u200e عن الـ90 يومًا التي سبقتها",
     "خرید 90 روز گذشته 38% کمتر از 90 روز پیش از آن بوده است"),
    ("spend_trend", {"spend_prev_90d": 10.0, "spend_90d": 1300.0},
     "Spend in the last 90 days up 12900% on the 90 before",
     "ارتفع إنفاقه في آخر 90 يومًا بنسبة 12900\u200e%\u200e عن الـ90 يومًا التي سبقتها",
     "خرید 90 روز گذشته 12900% بیشتر از 90 روز پیش از آن بوده است"),
    ("spend_trend", {}, "No spend in the last 180 days",
     "لا مشتريات في آخر 180 يومًا", "در 180 روز گذشته خریدی نداشته است"),
    ("spend_trend", {"spend_90d": 50.0}, "Spend only started in the last 90 days",
     "بدأ الشراء في آخر 90 يومًا فقط", "خریدهایش از 90 روز گذشته شروع شده است"),
    ("order_trend", {}, "No orders in the last 180 days",
     "لا طلبات في آخر 180 يومًا", "در 180 روز گذشته سفارشی نداشته است"),
    ("order_trend", {"orders_90d": 3.0, "orders_prev_90d": 5.0},
     "3 order(s) in the last 90 days against 5 in the 90 before",
     "3 طلبات في آخر 90 يومًا مقابل 5 في الـ90 يومًا التي سبقتها",
     "3 سفارش در 90 روز گذشته، در برابر 5 سفارش در 90 روز پیش از آن"),
    ("frequency", {}, "Only 42 purchase days in 1134 days",
     "اشترى في 42 يومًا فقط خلال 1134 يومًا",
     "در 1134 روز فقط 42 روز خرید کرده است"),
    ("frequency", {"purchase_days": 1.0}, "Only one purchase so far",
     "عملية شراء واحدة فقط حتى الآن", "تاکنون فقط یک بار خرید کرده است"),
    ("value", {}, "Lifetime spend 6,798; average order 157",
     "إجمالي مشترياته 6,798؛ ومتوسط الطلب 157", "کل خرید 6,798؛ میانگین هر سفارش 157"),
    ("tenure", {}, "Customer for 1134 days",
     "عميل منذ 1134 يومًا", "1134 روز است که مشتری ماست"),
    ("returns", {}, "Returned 12% of what they bought",
     "أعاد 12\u200e%\u200e مما اشتراه", "12% از خریدهایش را مرجوع کرده است"),
    ("breadth", {}, "Buys from only 1 product(s)",
     "يشتري منتجًا واحدًا فقط", "فقط 1 قلم کالا می\u200cخرد"),
]
# fmt: on


@pytest.mark.parametrize(
    ("group", "changes", "en", "ar", "fa"), CASES, ids=[f"{c[0]}: {c[2]}" for c in CASES]
)
def test_each_reason_in_english_arabic_and_persian(group, changes, en, ar, fa):
    r = row(**changes)
    assert phrase(group, r) == en
    assert phrase(group, r, "ar") == ar
    assert phrase(group, r, "fa") == fa


def test_english_halves_round_as_before():
    """Python's own rounding (exact binary value, ties to even), as the f-strings had it."""
    assert phrase("spend_trend", row(spend_prev_90d=200.0, spend_90d=231.0)).endswith(
        "up 16% on the 90 before"
    )  # 15.5 → 16
    assert phrase("spend_trend", row(spend_prev_90d=200.0, spend_90d=229.0)).endswith(
        "up 14% on the 90 before"
    )  # 14.5 → 14
    assert phrase("value", row(monetary_total=2.5, avg_order_value=3.5)) == (
        "Lifetime spend 2; average order 4"
    )
    assert phrase("recency", row(recency_days=0.5, gap_mean_days=1.5)) == (
        "No order for 0 days; usually orders every 2 days"
    )


def test_a_refund_that_rounds_to_zero_is_not_minus_zero():
    assert phrase("value", row(monetary_total=-0.3)) == "Lifetime spend 0; average order 157"
    assert phrase("value", row(monetary_total=-1234.6)).startswith("Lifetime spend -1,235;")


@pytest.mark.parametrize(
    ("n", "ar"),
    [
        (0, "لا طلبات في آخر"),
        (1, "طلب واحد في آخر"),
        (2, "طلبان في آخر"),
        (3, "3 طلبات في آخر"),
        (11, "11 طلبًا في آخر"),
        (100, "100 طلب في آخر"),
    ],
    ids=lambda v: str(v),
)
def test_arabic_order_counts_take_their_plural_form(n, ar):
    assert phrase("order_trend", row(orders_90d=float(n), orders_prev_90d=4.0), "ar").startswith(ar)


def test_native_digits_reach_the_numbers_and_the_translated_words():
    fa = translator("fa", native_digits=True)
    ar = translator("ar", native_digits=True)
    assert phrase("spend_trend", row(spend_prev_90d=1234.5), fa) == (
        "در ۹۰ روز گذشته خریدی نداشته، در حالی که در ۹۰ روز پیش از آن ۱٬۲۳۴ خرید کرده بود"
    )
    assert phrase("value", row(), ar) == "إجمالي مشترياته ٦٬٧٩٨؛ ومتوسط الطلب ١٥٧"
    assert phrase("returns", row(), ar) == "أعاد ١٢٪\u061c مما اشتراه"
    assert phrase("frequency", row(), fa) == "در ۱۱۳۴ روز فقط ۴۲ روز خرید کرده است"


def test_top_reasons_speak_the_reader_s_language():
    snap = pd.DataFrame([row()._asdict(), row(purchase_days=1.0, tenure_days=30.0)._asdict()])
    contrib = pd.DataFrame(
        {"recency_days": [2.0, -1.0], "purchase_days": [1.0, 3.0], "tenure_days": [0.5, 0.2]}
    )
    assert top_reasons(contrib, snap, 2).tolist() == [
        "No order for 128 days; usually orders every 25 days | Only 42 purchase days in 1134 days",
        "Only one purchase so far | Customer for 30 days",
    ]
    assert top_reasons(contrib, snap, 2, "fa").tolist() == [
        "128 روز است که سفارشی نداده؛ معمولاً هر 25 روز یک بار سفارش می\u200cدهد"
        " | در 1134 روز فقط 42 روز خرید کرده است",
        "تاکنون فقط یک بار خرید کرده است | 30 روز است که مشتری ماست",
    ]


# -- each manager's list in their language ------------------------------------------------

FEATURES = ["recency_days", "orders_90d"]
CALL = ActionRule(
    name="call",
    action={"en": "Call them", "ar": "اتصل بالعميل", "fa": "با مشتری تماس بگیرید"},
    channel="phone",
    owner="account_manager",
    cost=20.0,
    save_rate=0.3,
    risk_bands=["high"],
)
WINBACK = ActionRule(
    name="winback",
    action="Win-back offer (one text for everyone)",
    channel="email",
    owner="account_manager",
    cost=0.5,
    save_rate=0.05,
    lapsed=True,
)
OVERFLOW = OverflowAction(action={"en": "Email", "ar": "بريد إلكتروني", "fa": "ایمیل"})


@pytest.fixture(scope="module")
def model(tiny_model: ChurnModel) -> ChurnModel:
    """The tiny real booster of conftest (recency_days, orders_90d)."""
    return tiny_model


def snapshot() -> pd.DataFrame:
    """Three managers, each with a customer at high risk and a lapsed one."""
    n = 6
    return pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)],
            "customer_name": ["Ann", "Ben", "مریم رضایی", "Dee", "خالد الشمري", "Fay"],
            "account_manager": ["Tom", "Tom", "Sara", "Sara", "Khalid", "Khalid"],
            "region": ["EU"] * n,
            "recency_days": [300, 400, 310, 420, 320, 430],
            "orders_90d": [0] * n,
            "orders_prev_90d": [2, 0, 3, 0, 1, 0],
            "gap_mean_days": [60.0, 25.0, 40.0, 25.0, 30.0, 2.0],
            "gap_std_days": [5.0, 3.0, 4.0, 3.0, 2.0, 1.0],
            "monetary_total": [3000.0, 5000.0, 4000.0, 5000.0, 3500.0, 5000.0],
            "tenure_days": [900, 1000, 950, 1000, 990, 1000],
            "purchase_days": [12, 30, 20, 28, 15, 40],
            "rfm_segment": ["at_risk", "lost"] * 3,
            "lapsed": [0, 1] * 3,
            "one_time_buyer": [0] * n,
            "recency_to_gap": [5.0, 16.0, 7.0, 16.0, 10.0, 215.0],
            "last_purchase_date": pd.to_datetime(
                ["2024-03-06", "2023-11-27", "2024-02-25", "2023-11-07", "2024-02-15", "2023-10-28"]
            ),
        }
    )


def score(model, rp: ReportParams, languages: dict[str, str]) -> pd.DataFrame:
    sp = ScoreParams(playbook=[CALL, WINBACK], overflow=OVERFLOW, manager_languages=languages)
    scored = score_frame(snapshot(), model, sp, rp)
    change, _, _ = compare_with_previous(scored, None)
    return scored.assign(change=change, scored_by="test model")


def test_each_manager_reads_their_list_in_their_language(model):
    languages = {"Sara": "fa", "Khalid": "ar"}
    english = score(model, ReportParams(), {})
    mixed = score(model, ReportParams(), languages)
    # risk_list.csv is in report.language: the same, byte for byte, whoever reads what
    pd.testing.assert_frame_equal(present_columns(english), present_columns(mixed))

    lists = manager_lists(
        present_columns(mixed),
        pd.DataFrame(),
        local=mixed[["manager_action", "manager_reasons"]],
        languages={"Tom": "en", "Sara": "fa", "Khalid": "ar"},
    )
    plain = manager_lists(present_columns(english), pd.DataFrame())
    pd.testing.assert_frame_equal(lists["Tom"], plain["Tom"])  # English is unchanged
    sara, khalid = lists["Sara"].set_index("customer_id"), lists["Khalid"].set_index("customer_id")
    assert sara.loc["C2", "recommended_action"] == "با مشتری تماس بگیرید"
    assert khalid.loc["C4", "recommended_action"] == "اتصل بالعميل"
    # a plain-string action is shown to every reader as it is
    assert sara.loc["C3", "recommended_action"] == "Win-back offer (one text for everyone)"
    assert (
        sara.loc["C3", "reasons"]
        == "420 روز است که سفارشی نداده؛ معمولاً هر 25 روز یک بار سفارش می\u200cدهد"
    )
    assert khalid.loc["C5", "reasons"] == "لا طلبات منذ 430 يومًا؛ وعادةً يطلب كل يومين"
    assert sara.loc["C2", "reasons"] == (
        "0 سفارش در 90 روز گذشته، در برابر 3 سفارش در 90 روز پیش از آن"
        " | 310 روز است که سفارشی نداده؛ معمولاً هر 40 روز یک بار سفارش می\u200cدهد"
    )
    # codes, numbers and dates are what the English list holds: only the two texts differ
    for manager in ("Sara", "Khalid"):
        mine = lists[manager].drop(columns=["recommended_action", "reasons"])
        theirs = plain[manager].drop(columns=["recommended_action", "reasons"])
        pd.testing.assert_frame_equal(mine, theirs)


def test_the_report_language_writes_risk_list_texts_and_managers_keep_theirs(model):
    persian = score(model, ReportParams(language="fa"), {"Tom": "en"})
    present = present_columns(persian).set_index("customer_id")
    assert present.loc["C2", "recommended_action"] == "با مشتری تماس بگیرید"
    assert "300 روز است که سفارشی نداده" in present.loc["C0", "reasons"]
    tom = persian.set_index("customer_id").loc["C0"]
    assert tom["manager_language"] == "en" and tom["manager_action"] == "Call them"
    assert "No order for 300 days; usually orders every 60 days" in tom["manager_reasons"]
    english = score(model, ReportParams(), {})
    numbers = ["churn_risk_pct", "p_churn", "expected_net_benefit", "rank", "risk_band", "change"]
    pd.testing.assert_frame_equal(
        present_columns(persian)[numbers], present_columns(english)[numbers]
    )


def test_customers_who_left_are_told_in_the_manager_s_language(model):
    scored = score(model, ReportParams(), {"Sara": "fa"})
    gone = pd.DataFrame(
        {
            "customer_id": ["X1", "X2"],
            "customer_name": ["Old", "Older"],
            "account_manager": ["Sara", "Nour"],
            "last_purchase_date": ["2024-01-01", "2024-01-02"],
            "change": ["recovered", "off list"],
        }
    )
    lists = manager_lists(
        present_columns(scored),
        gone,
        local=scored[["manager_action", "manager_reasons"]],
        languages={"Sara": "fa", "Nour": "ar", "Tom": "en", "Khalid": "en"},
    )
    assert lists["Sara"].iloc[-1]["recommended_action"] == "دوباره خرید کرده است: از او تشکر کنید"
    assert lists["Nour"].iloc[-1]["recommended_action"] == "لا إجراء مطلوب هذا الأسبوع"
    assert manager_lists(present_columns(scored), gone)["Nour"].iloc[-1]["recommended_action"] == (
        "No action this week"
    )
