-- Measured uplift: every episode entry on a recorded list whose label window has passed,
-- with whether the customer churned (no purchase day in (list_date, list_date + horizon]).
-- Inputs: view `lists` (the ledger's list rows), view `transactions` (canonical lines);
-- parameters $horizon (features.horizon_days) and $last_day (last transaction date).
-- A purchase line has amount >= 0, as in the features' label (sql/features.sql).
with purchase_days as (
    select distinct customer_id, cast(ts as date) as day
    from transactions
    where amount >= 0
),

entries as (
    select list_date, customer_id, account_manager, action, owner, arm, episode_start, save_rate
    from lists
    where list_date = episode_start
      and list_date + cast($horizon as integer) <= cast($last_day as date)
),

bought as (
    select distinct e.list_date, e.customer_id, e.action
    from entries as e
    join purchase_days as p
      on p.customer_id = e.customer_id
     and p.day > e.list_date
     and p.day <= e.list_date + cast($horizon as integer)
),

final as (
    select e.*, b.customer_id is null as churned
    from entries as e
    left join bought as b
      on b.list_date = e.list_date and b.customer_id = e.customer_id and b.action = e.action
)

select * from final
order by action, list_date, customer_id
