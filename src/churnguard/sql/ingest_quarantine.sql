-- quarantine.parquet: the rows of `checked` (ingest_validate.sql) that failed a rule, with
-- the reason, the message, the raw text of every mapped column and, for a line that could
-- not be parsed, the line itself (raw_line), in source order.
--
-- Parameters:
--   $mapped_columns     canonical names of the mapped columns (unmapped ones are left out)

with

quarantined as (
    select * from checked
    where reason is not null
),

final as (
    select
        cast(source_row as bigint) as source_row,
        reason,
        detail,
        columns(lambda c: list_contains(cast($mapped_columns as varchar[]), c)),
        raw_line
    from quarantined
)

select * from final
order by source_row
