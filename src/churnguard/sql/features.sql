-- Point-in-time customer features and churn labels: one row per (cutoff, customer).
--
-- Inputs (views prepared by features.py, or by any other engine):
--   transactions  canonical lines: customer_id, order_id, ts, amount, quantity, product_id,
--                 account_manager, customer_name, region, source_row (quantity may be NULL)
--   cutoffs       one row per snapshot date: cutoff_date, horizon_end (NULL = no label),
--                 d30, d90, d180, d365 (cutoff_date minus that many days),
--                 lost_after_days
--
-- Rules: a snapshot at cutoff c sees only lines dated <= c. Its label is 1 ("churned")
-- when the customer has no purchase day in (c, horizon_end]. A purchase line has
-- amount >= 0; a negative line is a return. Written in plain SQL that sqlglot
-- transpiles to Spark SQL: no engine-specific functions beyond date_diff/arg_max.
-- Money is summed as DECIMAL (amounts have at most 4 decimals) and cast back to DOUBLE:
-- a DOUBLE sum depends on row order (DuckDB threads, Spark partitions), and rounded
-- features such as avg_order_value inherit that noise on rounding ties.

with lines as (
    select
        customer_id,
        order_id,
        cast(ts as date) as day,
        amount,
        quantity,
        product_id,
        account_manager,
        customer_name,
        region,
        source_row
    from transactions
),

-- one row per order and day: purchase value, returned value, latest line (one pass)
order_days as (
    select
        customer_id,
        order_id,
        day,
        cast(sum(cast(amount as decimal(38, 4))) filter (where amount >= 0) as double) as order_value,
        -cast(sum(cast(amount as decimal(38, 4))) filter (where amount < 0) as double) as returned,
        cast(sum(cast(quantity as decimal(38, 4))) filter (where amount >= 0) as double) as order_units,
        -- the latest line that names each attribute (a NULL never overwrites a known value)
        max(source_row) filter (where account_manager is not null) as manager_row,
        max(source_row) filter (where customer_name is not null) as name_row,
        max(source_row) filter (where region is not null) as region_row
    from lines
    group by customer_id, order_id, day
),

-- one row per customer and active day (purchases and/or returns)
daily as (
    select
        customer_id,
        day,
        count(order_value) as orders,
        coalesce(cast(sum(cast(order_value as decimal(38, 4))) as double), 0) as gross,
        max(order_value) as max_order,
        coalesce(cast(sum(cast(returned as decimal(38, 4))) as double), 0) as returned,
        cast(sum(cast(order_units as decimal(38, 4))) as double) as units,
        max(order_units) as max_order_units,
        max(manager_row) as manager_row,
        max(name_row) as name_row,
        max(region_row) as region_row
    from order_days
    group by customer_id, day
),

-- gap since the previous purchase day (purchase days only): one window, no join back
daily_gaps as (
    select
        *,
        case
            when orders > 0 then date_diff(
                'day', lag(day) over (partition by customer_id, orders > 0 order by day), day
            )
        end as gap_days
    from daily
),

-- the first purchase day (the same at every cutoff that sees the customer): value and units
first_days as (
    select customer_id, day as first_day, gross as first_day_spend, units as first_day_units
    from (
        select
            customer_id,
            day,
            gross,
            units,
            row_number() over (partition by customer_id order by day) as k
        from daily
        where orders > 0
    )
    where k = 1
),

-- first day each product was bought: lets distinct products be counted per cutoff
product_first as (
    select customer_id, product_id, min(day) as day
    from lines
    where amount >= 0 and product_id is not null
    group by customer_id, product_id
),

products as (
    select c.cutoff_date, p.customer_id, count(*) as distinct_products
    from cutoffs as c
    join product_first as p on p.day <= c.cutoff_date
    group by c.cutoff_date, p.customer_id
),

history as (
    select
        c.cutoff_date,
        d.customer_id,
        min(d.day) filter (where d.orders > 0) as first_purchase_date,
        max(d.day) filter (where d.orders > 0) as last_purchase_date,
        count(*) filter (where d.orders > 0) as purchase_days,
        sum(d.orders) as orders,
        cast(sum(cast(d.gross - d.returned as decimal(38, 4))) as double) as monetary_total,
        cast(sum(cast(d.gross as decimal(38, 4))) as double) as gross_spend,
        cast(sum(cast(d.returned as decimal(38, 4))) as double) as returned_value,
        max(d.max_order) as max_order_value,
        arg_max(d.gross, d.day) filter (where d.orders > 0) as last_day_spend,
        cast(sum(cast(d.units as decimal(38, 4))) as double) as units_total,
        max(d.max_order_units) as max_order_units,
        arg_max(d.units, d.day) filter (where d.orders > 0) as last_day_units,
        avg(d.gap_days) as gap_mean_days,
        stddev_samp(d.gap_days) as gap_std_days,
        arg_max(d.gap_days, d.day) filter (where d.orders > 0) as gap_last_days,
        sum(d.orders) filter (where d.day > c.d30) as orders_30d,
        sum(d.orders) filter (where d.day > c.d90) as orders_90d,
        sum(d.orders) filter (where d.day > c.d180) as orders_180d,
        sum(d.orders) filter (where d.day > c.d365) as orders_365d,
        sum(d.orders) filter (where d.day > c.d180 and d.day <= c.d90) as orders_prev_90d,
        cast(sum(cast(d.gross - d.returned as decimal(38, 4))) filter (where d.day > c.d30) as double) as spend_30d,
        cast(sum(cast(d.gross - d.returned as decimal(38, 4))) filter (where d.day > c.d90) as double) as spend_90d,
        cast(sum(cast(d.gross - d.returned as decimal(38, 4))) filter (where d.day > c.d180) as double) as spend_180d,
        cast(sum(cast(d.gross - d.returned as decimal(38, 4))) filter (where d.day > c.d365) as double) as spend_365d,
        cast(sum(cast(d.gross - d.returned as decimal(38, 4))) filter (
            where d.day > c.d180 and d.day <= c.d90
        ) as double) as spend_prev_90d,
        arg_max(d.manager_row, d.day) as manager_row,
        arg_max(d.name_row, d.day) as name_row,
        arg_max(d.region_row, d.day) as region_row,
        max(c.lost_after_days) as lost_after_days
    from cutoffs as c
    join daily_gaps as d on d.day <= c.cutoff_date
    group by c.cutoff_date, d.customer_id
),

-- the lines each snapshot takes its attributes from: fetched once, then looked up
attr_rows as (
    select manager_row as source_row from history
    union
    select name_row from history
    union
    select region_row from history
),

line_attrs as (
    -- one row per source_row even if a hand-made input repeats one (ingest never does)
    select source_row, min(account_manager) as account_manager, min(customer_name) as customer_name,
        min(region) as region
    from transactions
    where source_row in (select source_row from attr_rows)
    group by source_row
),

-- purchase days inside each label window (cutoff, horizon_end]
future as (
    select c.cutoff_date, o.customer_id, count(*) as future_purchase_days
    from cutoffs as c
    join daily as o on o.day > c.cutoff_date and o.day <= c.horizon_end and o.orders > 0
    where c.horizon_end is not null
    group by c.cutoff_date, o.customer_id
),

base as (
    select
        h.cutoff_date,
        h.customer_id,
        am.account_manager,
        an.customer_name,
        ar.region,
        h.first_purchase_date,
        h.last_purchase_date,
        date_diff('day', h.last_purchase_date, h.cutoff_date) as recency_days,
        date_diff('day', h.first_purchase_date, h.cutoff_date) as tenure_days,
        h.purchase_days,
        h.orders,
        h.monetary_total,
        h.gross_spend / h.orders as avg_order_value,
        h.max_order_value,
        h.last_day_spend,
        h.units_total,
        case when h.units_total > 0 then h.units_total / h.orders end as units_per_order,
        case when h.units_total > 0 then h.gross_spend / h.units_total end as avg_unit_price,
        h.max_order_units,
        h.last_day_units,
        fd.first_day_spend,
        fd.first_day_units,
        h.gap_mean_days,
        h.gap_std_days,
        h.gap_last_days,
        date_diff('day', h.last_purchase_date, h.cutoff_date) / h.gap_mean_days as recency_to_gap,
        coalesce(h.orders_30d, 0) as orders_30d,
        coalesce(h.orders_90d, 0) as orders_90d,
        coalesce(h.orders_180d, 0) as orders_180d,
        coalesce(h.orders_365d, 0) as orders_365d,
        coalesce(h.orders_prev_90d, 0) as orders_prev_90d,
        coalesce(h.spend_30d, 0) as spend_30d,
        coalesce(h.spend_90d, 0) as spend_90d,
        coalesce(h.spend_180d, 0) as spend_180d,
        coalesce(h.spend_365d, 0) as spend_365d,
        coalesce(h.spend_prev_90d, 0) as spend_prev_90d,
        case
            when h.gross_spend > 0 then h.returned_value / h.gross_spend else 0
        end as returned_share,
        coalesce(p.distinct_products, 0) as distinct_products,
        case when h.purchase_days = 1 then 1 else 0 end as one_time_buyer,
        30.0 * h.purchase_days / greatest(date_diff('day', h.first_purchase_date, h.cutoff_date), 30)
            as purchase_days_per_30d,
        30.0 * h.monetary_total / greatest(date_diff('day', h.first_purchase_date, h.cutoff_date), 30)
            as spend_per_30d,
        1.0 * date_diff('day', h.last_purchase_date, h.cutoff_date)
            / greatest(date_diff('day', h.first_purchase_date, h.cutoff_date), 1) as recency_to_tenure,
        case
            when date_diff('day', h.last_purchase_date, h.cutoff_date) > h.lost_after_days then 1
            else 0
        end as lapsed,
        case
            when c.horizon_end is null then null
            when f.future_purchase_days is null then 1
            else 0
        end as churned
    from history as h
    join cutoffs as c on c.cutoff_date = h.cutoff_date
    left join products as p on p.cutoff_date = h.cutoff_date and p.customer_id = h.customer_id
    left join first_days as fd on fd.customer_id = h.customer_id
    left join future as f on f.cutoff_date = h.cutoff_date and f.customer_id = h.customer_id
    left join line_attrs as am on am.source_row = h.manager_row
    left join line_attrs as an on an.source_row = h.name_row
    left join line_attrs as ar on ar.source_row = h.region_row
    where h.purchase_days > 0
),

trended as (
    select
        *,
        case
            when orders_90d + orders_prev_90d > 0
                then (orders_90d - orders_prev_90d) / (orders_90d + orders_prev_90d)
        end as orders_trend_90d,
        case
            when abs(spend_90d) + abs(spend_prev_90d) > 0
                then (spend_90d - spend_prev_90d) / (abs(spend_90d) + abs(spend_prev_90d))
        end as spend_trend_90d
    from base
),

-- RFM quintile scores within each cutoff; ties share a score (percent_rank). Ranked on a
-- narrow projection and joined back: sorting three keys is far cheaper than sorting every
-- feature column three times.
ranks as (
    select
        cutoff_date,
        customer_id,
        least(5, 1 + floor(5 * percent_rank() over (
            partition by cutoff_date order by recency_days desc
        ))) as r_score,
        least(5, 1 + floor(5 * percent_rank() over (
            partition by cutoff_date order by purchase_days
        ))) as f_score,
        least(5, 1 + floor(5 * percent_rank() over (
            partition by cutoff_date order by monetary_total
        ))) as m_score
    from (select cutoff_date, customer_id, recency_days, purchase_days, monetary_total from trended)
),

scored as (
    select t.*, r.r_score, r.f_score, r.m_score
    from trended as t
    join ranks as r on r.cutoff_date = t.cutoff_date and r.customer_id = t.customer_id
),

segmented as (
    select
        *,
        r_score + f_score + m_score as rfm_score,
        case
            when r_score >= 4 and round((f_score + m_score) / 2.0) >= 4 then 'Champions'
            when r_score = 3 and round((f_score + m_score) / 2.0) >= 4 then 'Loyal'
            when r_score >= 4 and round((f_score + m_score) / 2.0) >= 2 then 'Potential loyalist'
            when r_score = 5 then 'New'
            when r_score = 4 then 'Promising'
            when r_score = 3 then 'Needs attention'
            when round((f_score + m_score) / 2.0) = 5 then 'Can''t lose them'
            when round((f_score + m_score) / 2.0) >= 3 then 'At risk'
            when r_score = 2 then 'Hibernating'
            else 'Lost'
        end as rfm_segment
    from scored
),

-- fixed types and rounding: identical inputs give byte-identical files
final as (
    select
        cutoff_date,
        customer_id,
        account_manager,
        customer_name,
        region,
        first_purchase_date,
        last_purchase_date,
        cast(recency_days as integer) as recency_days,
        cast(tenure_days as integer) as tenure_days,
        cast(purchase_days as integer) as purchase_days,
        cast(orders as integer) as orders,
        cast(round(monetary_total, 4) as double) as monetary_total,
        cast(round(avg_order_value, 4) as double) as avg_order_value,
        cast(round(max_order_value, 4) as double) as max_order_value,
        cast(round(last_day_spend, 4) as double) as last_day_spend,
        cast(round(units_total, 4) as double) as units_total,
        cast(round(units_per_order, 6) as double) as units_per_order,
        cast(round(avg_unit_price, 4) as double) as avg_unit_price,
        cast(round(max_order_units, 4) as double) as max_order_units,
        cast(round(last_day_units, 4) as double) as last_day_units,
        cast(round(first_day_spend, 4) as double) as first_day_spend,
        cast(round(first_day_units, 4) as double) as first_day_units,
        cast(round(gap_mean_days, 6) as double) as gap_mean_days,
        cast(round(gap_std_days, 6) as double) as gap_std_days,
        cast(gap_last_days as double) as gap_last_days,
        cast(round(recency_to_gap, 6) as double) as recency_to_gap,
        cast(orders_30d as integer) as orders_30d,
        cast(orders_90d as integer) as orders_90d,
        cast(orders_180d as integer) as orders_180d,
        cast(orders_365d as integer) as orders_365d,
        cast(orders_prev_90d as integer) as orders_prev_90d,
        cast(round(spend_30d, 4) as double) as spend_30d,
        cast(round(spend_90d, 4) as double) as spend_90d,
        cast(round(spend_180d, 4) as double) as spend_180d,
        cast(round(spend_365d, 4) as double) as spend_365d,
        cast(round(spend_prev_90d, 4) as double) as spend_prev_90d,
        cast(round(orders_trend_90d, 6) as double) as orders_trend_90d,
        cast(round(spend_trend_90d, 6) as double) as spend_trend_90d,
        cast(round(returned_share, 6) as double) as returned_share,
        cast(distinct_products as integer) as distinct_products,
        cast(one_time_buyer as integer) as one_time_buyer,
        cast(round(purchase_days_per_30d, 6) as double) as purchase_days_per_30d,
        cast(round(spend_per_30d, 4) as double) as spend_per_30d,
        cast(round(recency_to_tenure, 6) as double) as recency_to_tenure,
        cast(r_score as integer) as r_score,
        cast(f_score as integer) as f_score,
        cast(m_score as integer) as m_score,
        cast(rfm_score as integer) as rfm_score,
        rfm_segment,
        cast(lapsed as integer) as lapsed,
        cast(churned as integer) as churned
    from segmented
)

select * from final
order by cutoff_date, customer_id
