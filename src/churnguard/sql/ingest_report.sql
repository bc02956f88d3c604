-- The counts of ingest_report.json: from `checked` (ingest_validate.sql), and from the two
-- Parquet files as written, so that churnguard.ingest can check that they reconcile.
--
-- Parameters:
--   $transactions_file, $quarantine_file   the files just written

with

checked_rows as (
    select
        source_row,
        reason,
        customer_id_clean as customer_id,
        ts_value as ts,
        round(amount_value, 4) as amount,
        account_manager_invisible_removed,
        account_manager_truncated,
        customer_name_invisible_removed,
        customer_name_truncated,
        region_invisible_removed,
        region_truncated
    from checked
),

written_rows as (
    select source_row from read_parquet($transactions_file)
    union all
    select source_row from read_parquet($quarantine_file)
),

-- totals of the clean rows (the money sum in source order: a float sum depends on order)
summary as (
    select
        count(*) as rows_in,
        count(*) filter (where reason is null) as rows_clean,
        count(distinct customer_id) filter (where reason is null) as customers,
        min(ts) filter (where reason is null) as ts_min,
        max(ts) filter (where reason is null) as ts_max,
        fsum(amount order by source_row) filter (where reason is null) as amount_total_clean,
        -- clean rows whose text lost invisible characters, and whose text was cut
        count(*) filter (where reason is null and account_manager_invisible_removed)
            as account_manager_invisible_removed,
        count(*) filter (where reason is null and account_manager_truncated)
            as account_manager_truncated,
        count(*) filter (where reason is null and customer_name_invisible_removed)
            as customer_name_invisible_removed,
        count(*) filter (where reason is null and customer_name_truncated)
            as customer_name_truncated,
        count(*) filter (where reason is null and region_invisible_removed)
            as region_invisible_removed,
        count(*) filter (where reason is null and region_truncated) as region_truncated
    from checked_rows
),

-- rows per reason (NULL when nothing is quarantined)
reason_counts as (
    select histogram(reason) filter (where reason is not null) as reasons
    from checked_rows
),

-- every source row must be written exactly once: rows_in rows numbered 1..rows_in
written as (
    select
        count(*) as written_rows,
        count(distinct source_row) as written_distinct,
        min(source_row) as written_min,
        max(source_row) as written_max
    from written_rows
),

final as (
    select * from summary
    cross join reason_counts
    cross join written
)

select * from final
