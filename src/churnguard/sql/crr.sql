-- Customer retention rate per complete period (see churnguard/crr.py for the definition).
-- Inputs: the view `transactions` (canonical lines); parameters $unit, $months, $window,
-- $start, $end are bound by the engine, never formatted in.
with source as (
    select customer_id, cast(ts as timestamp) as ts, cast(amount as double) as amount
    from transactions
),
purchases as (
    select customer_id, cast(ts as date) as day
    from source
    where amount >= 0 and customer_id is not null and ts is not null
),

data_range as (
    select min(cast(ts as date)) as data_min, max(cast(ts as date)) as data_max
    from source
    where ts is not null
),

first_purchase as (
    select customer_id, min(day) as first_day
    from purchases
    group by customer_id
),

period_grid as (
    select cast(g.p as date) as period_start,
           cast(g.p + to_months($months) - interval 1 day as date) as period_end
    from data_range,
         unnest(generate_series(
             date_trunc($unit, data_min), cast(data_max as timestamp), to_months($months)
         )) as g(p)
),

periods as (
    select period_grid.*, data_range.data_min
    from period_grid, data_range
    where period_start > data_min
      and period_end <= data_max
      and ($start is null or period_start >= cast($start as date))
      and ($end is null or period_end <= cast($end as date))
),

customer_status as (
    select p.period_start,
           pu.customer_id,
           bool_or(pu.day < p.period_start) as active_start,
           bool_or(pu.day > p.period_end - cast($window as integer)) as active_end
    from periods as p
    join purchases as pu
      on pu.day >= p.period_start - cast($window as integer)
     and pu.day <= p.period_end
    group by p.period_start, pu.customer_id
),

counts as (
    select p.period_start,
           p.period_end,
           p.data_min,
           count(*) filter (where s.active_start) as customers_start,
           count(*) filter (where s.active_end) as customers_end,
           count(*) filter (where s.active_end and f.first_day >= p.period_start)
               as new_customers,
           count(*) filter (
               where s.active_end and not s.active_start and f.first_day < p.period_start
           ) as reactivated_customers,
           count(*) filter (where s.active_start and s.active_end) as retained_customers
    from periods as p
    left join customer_status as s on s.period_start = p.period_start
    left join first_purchase as f on f.customer_id = s.customer_id
    group by p.period_start, p.period_end, p.data_min
),

final as (
    select case $unit
               when 'month' then strftime(period_start, '%Y-%m')
               when 'quarter' then strftime(period_start, '%Y') || 'Q' || quarter(period_start)
               else strftime(period_start, '%Y')
           end as period,
           period_start,
           period_end,
           customers_start,
           customers_end,
           new_customers,
           reactivated_customers,
           retained_customers,
           customers_start - retained_customers as lost_customers,
           round(100.0 * retained_customers / nullif(customers_start, 0), 2) as crr_pct,
           round(100.0 - round(100.0 * retained_customers / nullif(customers_start, 0), 2), 2)
               as churn_rate_pct,
           cast($window as integer) as active_within_days,
           period_start - cast($window as integer) >= data_min as full_lookback
    from counts
)

select * from final order by period_start
