-- transactions.parquet: the clean rows of `checked` (ingest_validate.sql) in the canonical
-- schema, ordered by customer, time and source row.
--
-- An unmapped (or blank) order_id is customer_id || '@' || ts (ISO, seconds): one order
-- per customer and timestamp. A blank account_manager is the default manager.
--
-- Parameters:
--   $default_account_manager

with

clean as (
    select * from checked
    where reason is null
),

final as (
    select
        customer_id_clean as customer_id,
        coalesce(
            order_id_clean, customer_id_clean || '@' || strftime(ts_value, '%Y-%m-%dT%H:%M:%S')
        ) as order_id,
        ts_value as ts,
        round(amount_value, 4) as amount,
        quantity_value as quantity,
        coalesce(account_manager_clean, $default_account_manager) as account_manager,
        customer_name_clean as customer_name,
        region_clean as region,
        product_id_clean as product_id,
        cast(source_row as bigint) as source_row
    from clean
)

select * from final
order by customer_id, ts, source_row
