"""Synthetic purchase history with a known latent truth (the pipeline's built-in input).

The process is Pareto/NBD-like, in continuous time measured in days since
``start_date`` (day ``d`` covers ``[d, d + 1)``; ``D`` is ``end_date``):

* **Acquisition.** Customer ``i`` is acquired on a day ``a_i`` drawn uniformly
  from ``[start_date, end_date - 30 days]`` and buys on that day (first order).
  Customer ids ``C0000001…`` follow acquisition order.
* **Purchase rate.** ``λ_i ~ Gamma(rate_shape, mean = orders_per_year / 365)``
  orders per day while alive.
* **Dropout.** ``μ_i ~ Gamma(dropout_shape, rate β)`` with
  ``β = 365 / ((1 - p)^(-1/s) - 1)``, so that ``E[exp(-365 μ)] = 1 - p``: the
  expected share of customers lost within 365 days of acquisition is
  ``p = first_year_churn_share``. Dropout time ``τ_i = a_i + Exp(μ_i)``;
  customers with ``τ_i`` after ``end_date`` are alive at the end. The truth's
  ``dropout_date`` is the day of ``τ_i`` (capped at 9999-12-31 so it stays a
  valid date).
* **Orders while alive** form a non-homogeneous Poisson process with intensity
  ``λ_i · season(t) · slow_i(t)`` on ``(a_i, min(τ_i, D + 1))``, simulated by
  thinning: ``N_i ~ Poisson(λ_i (1 + A) · length)`` candidate times, uniform on
  the period, each kept with probability ``season · slow / (1 + A)``.
  ``season(t) = 1 + A cos(2π (doy(t) - seasonality_peak_day) / 365.25)`` and
  ``slow_i(t)`` falls linearly from 1 at ``τ_i - slowdown_days`` to
  ``slowdown_floor`` at ``τ_i`` (1 before). Several orders on one day can occur.
* **Order values.** ``m_i ~ Gamma(2, mean = mean_order_value)``; an order's
  amount is ``m_i · LogNormal(-σ²/2, σ = 0.5) · (0.5 + 0.5 slow_i(t))``,
  rounded to cents, at least 1.00. (The log-normal is mean-one, so ``m_i`` is
  the customer's true mean order value before any slowdown.) Quantity is
  ``1 + Poisson(amount / 40)``.
* **Returns.** Each order, with probability ``return_rate``, gets a negative
  line ``U{3..30}`` days later (dropped if after ``end_date``): order id
  ``<order_id>-R``, amount ``-round(U(0.2, 1) · amount, 2)``, quantity minus
  the returned share of items (at least one).
* **Attributes.** Region from a fixed list; account manager from ``n_managers``
  names (Latin, Arabic and Persian script, and one awkward name with a slash and
  an apostrophe) with unequal Dirichlet loads, preferring managers whose home
  region is the customer's; customer names are first + last names from Arabic,
  Persian and Latin lists (about 40/30/30).

Order ids ``O…`` are numbered after sorting orders by (day, customer, time).
Rows are sorted by ``ts, customer_id, order_id``, so the same params and seed
give byte-identical files. Everything is vectorised with numpy
(``np.random.default_rng(seed)``); strings are built with Arrow compute.

**Treatment effect (optional, ``generate.treatment``).** For the closed loop — score a
list, let the world react, score again, measure — the generator can apply a known save
probability per action to the customers the ledger's lists record as *treated* at the
start of an episode (:mod:`churnguard.outcomes`). Such an entry (customer ``i``, list
date ``d``, action ``a``) is *saved* when ``u < save_rates[a]``, ``u`` the first 53 bits
of SHA-256("<seed>|save|<d>|<i>") / 2**53. A saved customer buys on day ``d + r``,
``r ~ U{1..response_within_days}`` (the response order), and starts a fresh lifetime
there: ``τ' = d + r + Exp(μ_i)``, orders re-simulated after the response as above (same
rate, season, slowdown towards ``τ'``, values and returns). Their lines after ``d`` are
replaced; nothing on or before ``d`` changes, and a later save of the same customer
replaces what follows it in turn. Each entry's draws come from its own generator seeded by
(seed, customer, day), so adding a later list never changes the past. A saved customer
always buys within the label window when ``response_within_days`` ≤
``features.horizon_days``, so the churn of treated entries is (1 − save rate) × the churn
of their held-out twins: the measured save rate's true value is exactly ``save_rates[a]``.
Without ``generate.treatment`` none of this runs and the output is unchanged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from churnguard.config import GenerateParams, TreatmentParams
from churnguard.io import atomic_path

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]
"""Optional callback: ``progress(stage, fraction_done)``."""

ACQUISITION_TAIL_DAYS = 30
RETURN_DELAY_DAYS = (3, 30)
ORDER_VALUE_SIGMA = 0.5
MAX_DATE = dt.date(9999, 12, 31)
_EPOCH = dt.date(1970, 1, 1)

TRANSACTION_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "order_id",
    "ts",
    "amount",
    "quantity",
    "account_manager",
    "customer_name",
    "region",
)
TRUTH_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "acquired",
    "purchase_rate_per_day",
    "dropout_rate_per_day",
    "dropout_date",
    "alive_at_end",
    "mean_order_value",
    "account_manager",
    "region",
)

REGIONS: tuple[str, ...] = ("Riyadh", "Tehran", "Dubai", "Cairo", "Istanbul", "London")
REGION_WEIGHTS: tuple[float, ...] = (0.24, 0.20, 0.20, 0.14, 0.12, 0.10)
MANAGER_HOME_SHARE = 0.7
"""Share of a region's customers assigned to managers based in that region."""

# (name, home region). The fourth name exercises safe file names downstream.
MANAGERS: tuple[tuple[str, str], ...] = (
    ("Sara Ahmadi", "Dubai"),
    ("مریم رضایی", "Tehran"),
    ("خالد العتيبي", "Riyadh"),
    ("O'Brien / North desk", "London"),
    ("Layla Haddad", "Cairo"),
    ("Emre Yılmaz", "Istanbul"),
    ("نورة القحطاني", "Riyadh"),
    ("رضا کریمی", "Tehran"),
    ("James Whitfield", "London"),
    ("فاطمة الزهراء", "Cairo"),
    ("Daniel Novak", "Istanbul"),
    ("پریسا موسوی", "Dubai"),
)

ARABIC_FIRST = (
    "محمد", "أحمد", "فاطمة", "عائشة", "خالد", "عمر", "نورة", "ليلى",
    "يوسف", "سارة", "علي", "حسن", "مريم", "هند", "عبدالله", "ريم",
)  # fmt: skip
ARABIC_LAST = (
    "العتيبي", "القحطاني", "الشمري", "الحربي", "المصري", "الزهراني",
    "الدوسري", "السيد", "حداد", "النجار", "الخطيب", "منصور",
)  # fmt: skip
PERSIAN_FIRST = (
    "مریم", "رضا", "زهرا", "علی", "حسین", "نرگس", "پریسا", "کاوه",
    "بهرام", "شیرین", "آرش", "نیلوفر", "سپیده", "مهدی", "فرهاد", "لیلا",
)  # fmt: skip
PERSIAN_LAST = (
    "رضایی", "احمدی", "محمدی", "حسینی", "کریمی", "موسوی",
    "جعفری", "صادقی", "رحیمی", "نوری", "کاظمی", "تهرانی",
)  # fmt: skip
LATIN_FIRST = (
    "Sara", "John", "Emma", "Omar", "Lucas", "Mia", "Daniel", "Aylin",
    "Mehmet", "Olivia", "James", "Leila", "Noah", "Elif", "Hannah", "Ali",
)  # fmt: skip
LATIN_LAST = (
    "Smith", "Ahmadi", "Yilmaz", "Brown", "Khan", "Demir", "Taylor", "Haddad",
    "Wilson", "Kaya", "Evans", "Nasser", "O'Connor", "García", "Müller", "Novak",
)  # fmt: skip
NAME_SCRIPTS: tuple[tuple[float, tuple[str, ...], tuple[str, ...]], ...] = (
    (0.4, ARABIC_FIRST, ARABIC_LAST),
    (0.3, PERSIAN_FIRST, PERSIAN_LAST),
    (0.3, LATIN_FIRST, LATIN_LAST),
)


def dropout_rate_scale(first_year_churn_share: float, dropout_shape: float) -> float:
    """Gamma rate β such that ``E[exp(-365 μ)] = 1 - first_year_churn_share``."""
    p, s = first_year_churn_share, dropout_shape
    return 365.0 / ((1.0 - p) ** (-1.0 / s) - 1.0)


def manager_names(n_managers: int) -> list[str]:
    """The first ``n_managers`` names of the fixed list, numbered beyond its end."""
    names = [name for name, _ in MANAGERS]
    out = names[:n_managers]
    k = 2
    while len(out) < n_managers:
        out.extend(f"{name} {k}" for name in names[: n_managers - len(out)])
        k += 1
    return out


def _manager_homes(n_managers: int) -> np.ndarray:
    region_index = {r: i for i, r in enumerate(REGIONS)}
    homes = [region_index[MANAGERS[k % len(MANAGERS)][1]] for k in range(n_managers)]
    return np.asarray(homes, dtype=np.int64)


def _categorical(rng: np.random.Generator, cum_probs: np.ndarray) -> np.ndarray:
    """Draw indices from per-row cumulative probabilities (rows × categories)."""
    u = rng.random(cum_probs.shape[0])
    idx = (u[:, None] >= cum_probs).sum(axis=1)
    return np.minimum(idx, cum_probs.shape[1] - 1)


def _assign_managers(rng: np.random.Generator, region: np.ndarray, n_managers: int) -> np.ndarray:
    """Managers with unequal loads, preferring those based in the customer's region."""
    load = rng.dirichlet(np.full(n_managers, 2.0))
    homes = _manager_homes(n_managers)
    probs = np.empty((len(REGIONS), n_managers))
    for r in range(len(REGIONS)):
        local = load * (homes == r)
        if local.sum() > 0:
            probs[r] = (1 - MANAGER_HOME_SHARE) * load + MANAGER_HOME_SHARE * local / local.sum()
        else:
            probs[r] = load
    cum = np.cumsum(probs, axis=1)
    return _categorical(rng, cum[region])


def _customer_names(rng: np.random.Generator, n: int) -> tuple[pa.Array, np.ndarray]:
    """All first+last combinations (Arrow array) and each customer's index into it."""
    combos: list[str] = []
    offsets: list[int] = []
    sizes: list[tuple[int, int]] = []
    for _, first, last in NAME_SCRIPTS:
        offsets.append(len(combos))
        sizes.append((len(first), len(last)))
        combos.extend(f"{f} {s}" for f in first for s in last)
    shares = np.asarray([w for w, _, _ in NAME_SCRIPTS])
    script = np.searchsorted(np.cumsum(shares) / shares.sum(), rng.random(n), side="right")
    script = np.minimum(script, len(NAME_SCRIPTS) - 1)
    n_first = np.asarray([f for f, _ in sizes])[script]
    n_last = np.asarray([s for _, s in sizes])[script]
    first = np.floor(rng.random(n) * n_first).astype(np.int64)
    last = np.floor(rng.random(n) * n_last).astype(np.int64)
    idx = np.asarray(offsets)[script] + first * n_last + last
    return pa.array(combos, type=pa.string()), idx


def _prefixed_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded ``numbers`` as an Arrow string array."""
    digits = pc.cast(pa.array(numbers, type=pa.int64()), pa.string())
    padded = pc.utf8_lpad(digits, width=width, padding="0")
    return pc.utf8_replace_slice(padded, start=0, stop=0, replacement=prefix)


def _days_to_date32(days_since_epoch: np.ndarray) -> pa.Array:
    return pa.array(days_since_epoch.astype("datetime64[D]"), type=pa.date32())


def _season_by_day(cfg: GenerateParams, n_days: int) -> np.ndarray:
    """Seasonal multiplier for each day offset ``0 … n_days - 1`` from ``start_date``."""
    dates = np.datetime64(cfg.start_date, "D") + np.arange(n_days)
    doy = (dates - dates.astype("datetime64[Y]")).astype(np.int64) + 1
    phase = 2.0 * np.pi * (doy - cfg.seasonality_peak_day) / 365.25
    return 1.0 + cfg.seasonality_amplitude * np.cos(phase)


def _slow(cfg: GenerateParams, tau: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Pre-dropout slowdown multiplier: 1, then linear down to ``slowdown_floor`` at τ."""
    if cfg.slowdown_days <= 0:
        return np.ones_like(t)
    frac = np.clip((tau - t) / cfg.slowdown_days, 0.0, 1.0)
    return cfg.slowdown_floor + (1.0 - cfg.slowdown_floor) * frac


def generate_tables(
    cfg: GenerateParams, progress: Progress | None = None
) -> tuple[pa.Table, pa.Table]:
    """Simulate the process in the module docstring; return ``(transactions, truth)``."""

    def step(stage: str, done: float) -> None:
        log.debug("generate: %s", stage)
        if progress is not None:
            progress(stage, done)

    rng = np.random.default_rng(cfg.seed)
    n = cfg.n_customers
    n_days = (cfg.end_date - cfg.start_date).days + 1  # days 0 … D
    last_day = n_days - 1
    start_epoch = (cfg.start_date - _EPOCH).days

    # -- customers -------------------------------------------------------------------
    step("customers", 0.0)
    acq_span = max(last_day - ACQUISITION_TAIL_DAYS, 0)
    acquired = np.sort(rng.integers(0, acq_span + 1, size=n)).astype(np.float64)
    lam = rng.gamma(cfg.rate_shape, (cfg.orders_per_year / 365.0) / cfg.rate_shape, size=n)
    beta = dropout_rate_scale(cfg.first_year_churn_share, cfg.dropout_shape)
    mu = rng.gamma(cfg.dropout_shape, 1.0 / beta, size=n)
    with np.errstate(divide="ignore"):
        tau = acquired + rng.standard_exponential(n) / mu  # inf where μ == 0
    mean_value = rng.gamma(2.0, cfg.mean_order_value / 2.0, size=n)
    region_cum = np.cumsum(REGION_WEIGHTS) / np.sum(REGION_WEIGHTS)
    region = np.minimum(np.searchsorted(region_cum, rng.random(n), side="right"), len(REGIONS) - 1)
    manager = _assign_managers(rng, region, cfg.n_managers)
    name_pool, name_idx = _customer_names(rng, n)

    # -- orders: first purchase + thinned Poisson candidates -------------------------
    step("orders", 0.15)
    end_active = np.minimum(tau, float(n_days))
    active_len = end_active - acquired
    lam_max = lam * (1.0 + cfg.seasonality_amplitude)
    n_cand = rng.poisson(lam_max * active_len)
    cand_cust = np.repeat(np.arange(n, dtype=np.int64), n_cand)
    cand_t = acquired[cand_cust] + rng.random(cand_cust.size) * active_len[cand_cust]
    cand_day = np.minimum(cand_t.astype(np.int64), last_day)
    season = _season_by_day(cfg, n_days)
    accept_p = season[cand_day] * _slow(cfg, tau[cand_cust], cand_t)
    accept_p /= 1.0 + cfg.seasonality_amplitude
    keep = rng.random(cand_cust.size) < accept_p
    del accept_p
    o_cust = np.concatenate([np.arange(n, dtype=np.int64), cand_cust[keep]])
    o_t = np.concatenate([acquired, cand_t[keep]])
    o_day = np.concatenate([acquired.astype(np.int64), cand_day[keep]])
    del cand_cust, cand_t, cand_day, keep

    order = np.lexsort((o_t, o_cust, o_day))
    o_cust, o_t, o_day = o_cust[order], o_t[order], o_day[order]
    n_orders = o_cust.size
    o_slow = _slow(cfg, tau[o_cust], o_t)
    del o_t, order
    shock = rng.lognormal(-0.5 * ORDER_VALUE_SIGMA**2, ORDER_VALUE_SIGMA, size=n_orders)
    o_amount = np.maximum(np.round(mean_value[o_cust] * shock * (0.5 + 0.5 * o_slow), 2), 1.0)
    del shock, o_slow
    o_qty = 1 + rng.poisson(o_amount / 40.0)

    # -- returns ---------------------------------------------------------------------
    step("returns", 0.45)
    ret_src = np.flatnonzero(rng.random(n_orders) < cfg.return_rate)
    lo, hi = RETURN_DELAY_DAYS
    r_day = o_day[ret_src] + rng.integers(lo, hi + 1, size=ret_src.size)
    r_frac = rng.uniform(0.2, 1.0, size=ret_src.size)
    inside = r_day <= last_day
    ret_src, r_day, r_frac = ret_src[inside], r_day[inside], r_frac[inside]
    r_amount = -np.round(r_frac * o_amount[ret_src], 2)
    r_qty = -np.maximum(np.round(r_frac * o_qty[ret_src]).astype(np.int64), 1)
    n_returns = ret_src.size

    # -- all lines, sorted by ts, customer_id, order_id ------------------------------
    step("sort", 0.55)
    line_cust = np.concatenate([o_cust, o_cust[ret_src]])
    line_day = np.concatenate([o_day, r_day])
    line_order = np.concatenate([np.arange(n_orders, dtype=np.int64), ret_src])
    line_is_ret = np.concatenate(
        [np.zeros(n_orders, dtype=np.int8), np.ones(n_returns, dtype=np.int8)]
    )
    line_amount = np.concatenate([o_amount, r_amount])
    line_qty = np.concatenate([o_qty, r_qty])
    del o_cust, o_day, o_amount, o_qty, r_day, r_amount, r_qty
    order = np.lexsort((line_is_ret, line_order, line_cust, line_day))
    line_cust, line_day, line_order, line_is_ret = (
        line_cust[order], line_day[order], line_order[order], line_is_ret[order]
    )  # fmt: skip
    line_amount, line_qty = line_amount[order], line_qty[order]
    del order

    # -- Arrow tables ----------------------------------------------------------------
    step("strings", 0.7)
    cust_width = max(7, len(str(n)))
    order_width = max(7, len(str(n_orders)))
    cust_ids = _prefixed_ids("C", np.arange(1, n + 1), cust_width)
    managers = pa.array(manager_names(cfg.n_managers), type=pa.string())
    regions = pa.array(REGIONS, type=pa.string())
    cust_manager = managers.take(pa.array(manager))
    cust_region = regions.take(pa.array(region))
    cust_name = name_pool.take(pa.array(name_idx))

    line_cust_arrow = pa.array(line_cust)
    order_ids = _prefixed_ids("O", line_order + 1, order_width)
    suffix = pc.if_else(pa.array(line_is_ret.astype(bool)), "-R", "")
    order_ids = pc.binary_join_element_wise(order_ids, suffix, "")
    transactions = pa.table(
        {
            "customer_id": cust_ids.take(line_cust_arrow),
            "order_id": order_ids,
            "ts": _days_to_date32(line_day + start_epoch),
            "amount": pa.array(line_amount, type=pa.float64()),
            "quantity": pa.array(line_qty.astype(np.int64), type=pa.int64()),
            "account_manager": cust_manager.take(line_cust_arrow),
            "customer_name": cust_name.take(line_cust_arrow),
            "region": cust_region.take(line_cust_arrow),
        }
    )

    max_days = float((MAX_DATE - _EPOCH).days)
    dropout_epoch = np.minimum(np.floor(tau) + start_epoch, max_days).astype(np.int64)
    end_epoch = start_epoch + last_day
    truth = pa.table(
        {
            "customer_id": cust_ids,
            "acquired": _days_to_date32(acquired.astype(np.int64) + start_epoch),
            "purchase_rate_per_day": pa.array(lam, type=pa.float64()),
            "dropout_rate_per_day": pa.array(mu, type=pa.float64()),
            "dropout_date": _days_to_date32(dropout_epoch),
            "alive_at_end": pa.array(dropout_epoch > end_epoch, type=pa.bool_()),
            "mean_order_value": pa.array(mean_value, type=pa.float64()),
            "account_manager": cust_manager,
            "region": cust_region,
        }
    )
    step("done", 1.0)
    return transactions, truth


_TREATMENT_STREAM = 0x5A7ED  # entropy word separating the treatment's draws from the main ones


def entry_uniform(seed: int, list_date: dt.date, customer_id: str) -> float:
    """The save draw of a treated entry: SHA-256("<seed>|save|<date>|<id>") → [0, 1)."""
    digest = hashlib.sha256(f"{seed}|save|{list_date.isoformat()}|{customer_id}".encode()).digest()
    return (int.from_bytes(digest[:8]) >> 11) / float(2**53)


def saved_entries(
    seed: int,
    treatment: TreatmentParams,
    customer_ids: list[str],
    list_dates: list[dt.date],
    actions: list[str],
) -> np.ndarray:
    """Which treated entries the known effect saves (module docstring)."""
    rates = [treatment.save_rates.get(a, 0.0) for a in actions]
    return np.asarray(
        [
            entry_uniform(seed, d, c) < r
            for c, d, r in zip(customer_ids, list_dates, rates, strict=True)
        ],
        dtype=bool,
    )


def _entry_lines(
    cfg: GenerateParams,
    treatment: TreatmentParams,
    c: int,
    day: int,
    lam: float,
    mu: float,
    mean_value: float,
    season: np.ndarray,
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One saved entry's future from list day ``day``: (new dropout time τ', line days,
    amounts, quantities, order numbers within the entry, is-return flags)."""
    last_day = len(season) - 1
    rng = np.random.default_rng([cfg.seed, _TREATMENT_STREAM, c, day])
    resp = day + int(rng.integers(1, treatment.response_within_days + 1)) + rng.random()
    with np.errstate(divide="ignore"):
        tau = resp + rng.standard_exponential() / mu
    length = max(min(tau, float(len(season))) - resp, 0.0)
    a = cfg.seasonality_amplitude
    n_cand = rng.poisson(lam * (1.0 + a) * length)
    cand_t = resp + rng.random(n_cand) * length
    cand_day = np.minimum(cand_t.astype(np.int64), last_day)
    accept = rng.random(n_cand) < season[cand_day] * _slow(cfg, np.full(n_cand, tau), cand_t) / (
        1.0 + a
    )
    t = np.sort(np.concatenate([[resp], cand_t[accept]]))
    slow = _slow(cfg, np.full(t.size, tau), t)
    shock = rng.lognormal(-0.5 * ORDER_VALUE_SIGMA**2, ORDER_VALUE_SIGMA, size=t.size)
    amount = np.maximum(np.round(mean_value * shock * (0.5 + 0.5 * slow), 2), 1.0)
    qty = 1 + rng.poisson(amount / 40.0)
    days = t.astype(np.int64)
    ret = np.flatnonzero(rng.random(t.size) < cfg.return_rate)
    lo, hi = RETURN_DELAY_DAYS
    r_day = days[ret] + rng.integers(lo, hi + 1, size=ret.size)
    r_frac = rng.uniform(0.2, 1.0, size=ret.size)
    r_amount = -np.round(r_frac * amount[ret], 2)
    r_qty = -np.maximum(np.round(r_frac * qty[ret]).astype(np.int64), 1)
    return (
        tau,
        np.concatenate([days, r_day]),
        np.concatenate([amount, r_amount]),
        np.concatenate([qty, r_qty]),
        np.concatenate([np.arange(t.size), ret]),
        np.concatenate([np.zeros(t.size, bool), np.ones(ret.size, bool)]),
    )


def apply_treatment(
    cfg: GenerateParams,
    transactions: pa.Table,
    truth: pa.Table,
    customer_ids: list[str],
    list_dates: list[dt.date],
    actions: list[str],
) -> tuple[pa.Table, pa.Table, dict[str, Any]]:
    """The world where treated entries were saved with the known probabilities (module
    docstring); returns new tables and counts."""
    treatment = cfg.treatment
    if treatment is None:
        raise ValueError("generate.treatment is not set")
    n_days = (cfg.end_date - cfg.start_date).days + 1
    last_day = n_days - 1
    start_epoch = (cfg.start_date - _EPOCH).days
    season = _season_by_day(cfg, n_days)
    index = {cid: i for i, cid in enumerate(truth["customer_id"].to_pylist())}
    known = [i for i, cid in enumerate(customer_ids) if cid in index]
    ids = [customer_ids[i] for i in known]
    dates = [list_dates[i] for i in known]
    saved = saved_entries(cfg.seed, treatment, ids, dates, [actions[i] for i in known])
    day_of = np.asarray([(d - cfg.start_date).days for d in dates], dtype=np.int64)
    chosen = np.flatnonzero(saved & (day_of < last_day))
    saves: dict[int, list[tuple[int, dt.date]]] = {}
    for k in chosen:
        saves.setdefault(index[ids[k]], []).append((int(day_of[k]), dates[k]))
    lam = truth["purchase_rate_per_day"].to_numpy()
    mu = truth["dropout_rate_per_day"].to_numpy()
    mean_value = truth["mean_order_value"].to_numpy()
    tau_new: dict[int, float] = {}
    parts: dict[str, list[Any]] = {k: [] for k in ("cust", "day", "amount", "qty", "oid")}
    cust_ids = truth["customer_id"].to_pylist()
    for c in sorted(saves):
        plan = sorted(set(saves[c]))
        for j, (day, when) in enumerate(plan):
            until = plan[j + 1][0] if j + 1 < len(plan) else last_day
            tau, days, amount, qty, num, is_ret = _entry_lines(
                cfg, treatment, c, day, lam[c], mu[c], mean_value[c], season
            )
            tau_new[c] = tau
            keep = (days > day) & (days <= min(until, last_day))
            stem = f"T{when:%Y%m%d}-{cust_ids[c]}-"
            parts["cust"].append(np.full(int(keep.sum()), c))
            parts["day"].append(days[keep])
            parts["amount"].append(amount[keep])
            parts["qty"].append(qty[keep])
            parts["oid"].extend(
                f"{stem}{n + 1:04d}{'-R' if r else ''}"
                for n, r in zip(num[keep], is_ret[keep], strict=True)
            )
    first_save = {c: min(d for d, _ in v) for c, v in saves.items()}
    line_cust = pc.index_in(transactions["customer_id"], value_set=truth["customer_id"])
    line_cust = line_cust.to_numpy(zero_copy_only=False).astype(np.int64)
    line_day = transactions["ts"].cast(pa.int32()).to_numpy() - start_epoch
    cut = np.full(len(cust_ids), np.iinfo(np.int64).max)
    for c, d in first_save.items():
        cut[c] = d
    kept = transactions.filter(pa.array(line_day <= cut[line_cust]))
    if parts["cust"]:
        c_arr = np.concatenate(parts["cust"]).astype(np.int64)
        first_line = pc.index_in(truth["customer_id"], value_set=transactions["customer_id"])
        attrs = transactions.take(first_line)  # each customer's first line: name, manager, region
        take = pa.array(c_arr)
        new = pa.table(
            {
                "customer_id": truth["customer_id"].take(take),
                "order_id": pa.array(parts["oid"], type=pa.string()),
                "ts": _days_to_date32(np.concatenate(parts["day"]) + start_epoch),
                "amount": pa.array(np.concatenate(parts["amount"]), type=pa.float64()),
                "quantity": pa.array(
                    np.concatenate(parts["qty"]).astype(np.int64), type=pa.int64()
                ),
                "account_manager": attrs["account_manager"].take(take),
                "customer_name": attrs["customer_name"].take(take),
                "region": attrs["region"].take(take),
            }
        ).cast(transactions.schema)
        kept = pa.concat_tables([kept, new])
    order = pc.sort_indices(
        kept,
        sort_keys=[("ts", "ascending"), ("customer_id", "ascending"), ("order_id", "ascending")],
    )
    out = kept.take(order)
    dropout = truth["dropout_date"].cast(pa.int32()).to_numpy().astype(np.int64)
    max_days = (MAX_DATE - _EPOCH).days
    for c, tau in tau_new.items():
        dropout[c] = min(np.floor(tau) + start_epoch, max_days) if np.isfinite(tau) else max_days
    new_truth = truth.set_column(
        truth.schema.get_field_index("dropout_date"), "dropout_date", _days_to_date32(dropout)
    ).set_column(
        truth.schema.get_field_index("alive_at_end"),
        "alive_at_end",
        pa.array(dropout > start_epoch + last_day, type=pa.bool_()),
    )
    counts = {"treated_entries": len(known), "saved": int(saved.sum())}
    return out, new_truth, counts


def _write_table(table: pa.Table, target: Path, fmt: str) -> None:
    with atomic_path(target) as tmp:
        if fmt == "csv":
            with pa.OSFile(str(tmp), "wb") as sink:
                pacsv.write_csv(table, sink)
        else:
            pq.write_table(table, str(tmp), compression="zstd")


def summarise(transactions: pa.Table, truth: pa.Table) -> dict[str, Any]:
    """Counts and date range of generated tables (the JSON-able part of the summary)."""
    amount = transactions["amount"]
    ts_range = pc.min_max(transactions["ts"])
    return {
        "rows": transactions.num_rows,
        "customers": pc.count_distinct(transactions["customer_id"]).as_py(),
        "orders": int(pc.sum(pc.greater(amount, 0)).as_py() or 0),
        "returns": int(pc.sum(pc.less(amount, 0)).as_py() or 0),
        "churned_by_end": int(pc.sum(pc.invert(truth["alive_at_end"])).as_py() or 0),
        "date_min": ts_range["min"].as_py().isoformat(),
        "date_max": ts_range["max"].as_py().isoformat(),
    }


def run_generate(cfg: GenerateParams, progress: Progress | None = None) -> dict[str, Any]:
    """Generate and atomically write transactions (``cfg.format``) and truth (Parquet)."""
    started = time.perf_counter()
    transactions, truth = generate_tables(cfg, progress)
    effect: dict[str, Any] = {}
    if cfg.treatment is not None:
        from churnguard.ledger import treated_entries

        entries = treated_entries(Path(cfg.treatment.ledger))
        transactions, truth, effect = apply_treatment(
            cfg,
            transactions,
            truth,
            entries["customer_id"].tolist(),
            entries["list_date"].tolist(),
            entries["action"].tolist(),
        )
    _write_table(transactions, Path(cfg.output), cfg.format)
    _write_table(truth, Path(cfg.truth_output), "parquet")
    summary = summarise(transactions, truth)
    if effect:
        summary["treatment"] = effect
    summary.update(output=str(cfg.output), truth_output=str(cfg.truth_output))
    log.debug(
        "generate: %d rows for %d customers in %.1f s",
        summary["rows"],
        summary["customers"],
        time.perf_counter() - started,
    )
    return summary
