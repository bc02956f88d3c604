-- Ingest validation: every source row, cleaned and parsed, with the first rule it fails
-- (reason NULL = clean) and a message (detail). churnguard.ingest stores the result as
-- the temp table `checked`; ingest_transactions.sql, ingest_quarantine.sql and
-- ingest_report.sql read it.
--
-- Input: the view raw_lines, made by churnguard.ingest from the source file. It is the
-- only SQL built from the configuration (the reader call, and the user's column names
-- renamed to canonical ones); this program reads canonical names only:
--   source_row          1-based data row of the source (blank whitespace lines not counted)
--   n_fields            fields on the line (delimiter: whitespace), else NULL
--   customer_id, order_id, ts, amount, quantity, account_manager, customer_name,
--   region, product_id  raw text as read (NULL when the column is not mapped)
--   ts_native, amount_native, quantity_native
--                       the value as the source typed it (Parquet DATE/TIMESTAMP or
--                       numeric column), else NULL
--
-- Parameters:
--   $source_customer_id, $source_ts, $source_amount, $source_quantity
--                       source column names (messages only)
--   $ts_is_native, $amount_is_native, $quantity_is_native
--                       use the *_native value instead of parsing text
--   $date_format        strptime format; NULL = ISO 8601 (an explicit UTC offset is
--                       converted to UTC)
--   $decimal_separator, $thousands_separator (NULL = none)
--   $expected_fields    fields a whitespace-separated line must have (NULL otherwise)
--   $as_of              rows dated after it are quarantined (NULL = no limit)
--   $drop_exact_duplicates

with

lines as (
    select
        source_row,
        n_fields,
        customer_id,
        order_id,
        ts,
        amount,
        quantity,
        account_manager,
        customer_name,
        region,
        product_id,
        ts_native,
        amount_native,
        quantity_native
    from raw_lines
),

-- blanks trimmed (space, tab, CR, LF, no-break space, BOM); an empty field is NULL
cleaned as (
    select
        *,
        cg_clean(customer_id) as customer_id_clean,
        cg_clean(order_id) as order_id_clean,
        cg_clean(ts) as ts_clean,
        cg_clean(amount) as amount_clean,
        cg_clean(quantity) as quantity_clean,
        cg_clean(account_manager) as account_manager_clean,
        cg_clean(customer_name) as customer_name_clean,
        cg_clean(region) as region_clean,
        cg_clean(product_id) as product_id_clean
    from lines
),

-- timestamps and numbers; NULL when the text does not parse (typed Parquet values are
-- used as they are, except that a NaN or infinite number is no number)
parsed as (
    select
        *,
        case
            when $ts_is_native then ts_native
            when $date_format is not null
                then cast(try_strptime(ts_clean, cast($date_format as varchar)) as timestamp)
            else coalesce(
                try_cast(try_cast(ts_clean as timestamptz) as timestamp),
                try_cast(ts_clean as timestamp)
            )
        end as ts_value,
        case
            when $amount_is_native then case when isfinite(amount_native) then amount_native end
            else cg_number(
                amount_clean, cast($thousands_separator as varchar), cast($decimal_separator as varchar)
            )
        end as amount_value,
        case
            when $quantity_is_native then case when isfinite(quantity_native) then quantity_native end
            else cg_number(
                quantity_clean, cast($thousands_separator as varchar), cast($decimal_separator as varchar)
            )
        end as quantity_value
    from cleaned
),

-- raw values that occur on more than one row, with the first such row (grouping and
-- joining back is 2-3x faster than a window over every raw column on 5M rows); empty
-- when duplicates are kept
duplicate_groups as (
    select
        customer_id,
        order_id,
        ts,
        amount,
        quantity,
        account_manager,
        customer_name,
        region,
        product_id,
        min(source_row) as first_same_row
    from lines
    where $drop_exact_duplicates
    group by all
    having count(*) > 1
),

-- the first row with the same raw values in every mapped column (the row itself if none)
first_rows as (
    select
        parsed.*,
        coalesce(duplicate_groups.first_same_row, parsed.source_row) as first_same_row
    from parsed
    left join duplicate_groups
        on parsed.customer_id is not distinct from duplicate_groups.customer_id
        and parsed.order_id is not distinct from duplicate_groups.order_id
        and parsed.ts is not distinct from duplicate_groups.ts
        and parsed.amount is not distinct from duplicate_groups.amount
        and parsed.quantity is not distinct from duplicate_groups.quantity
        and parsed.account_manager is not distinct from duplicate_groups.account_manager
        and parsed.customer_name is not distinct from duplicate_groups.customer_name
        and parsed.region is not distinct from duplicate_groups.region
        and parsed.product_id is not distinct from duplicate_groups.product_id
),

-- how numbers are read, for the messages of the number rules
number_settings as (
    select
        printf('decimal_separator ''%s''', $decimal_separator)
        || coalesce(printf(', thousands_separator ''%s''', $thousands_separator), '')
            as number_settings
),

-- THE VALIDATION RULES, in priority order: a row's reason is the first rule it fails.
-- Each rule is declared here and nowhere else: its reason code, its check and its
-- quarantine message. churnguard.ingest reads the reason codes (REASONS, the report's
-- reason list) and the "-- rule <reason>: ..." comments (describe_rules, the docs)
-- from this CASE. A rule whose setting is off never fires (its check is NULL or false).
failures as (
    select
        *,
        case
            -- rule wrong_field_count: (delimiter: whitespace only) a line with a different
            --     number of fields than the header (or than the widest line without a header).
            when n_fields <> $expected_fields then struct_pack(
                reason := 'wrong_field_count',
                detail := printf(
                    'line has %d fields, expected %d (whitespace-separated)', n_fields, $expected_fields
                )
            )

            -- rule missing_customer_id: blank or missing customer id.
            when customer_id_clean is null then struct_pack(
                reason := 'missing_customer_id',
                detail := printf('customer_id (source column "%s") is empty', $source_customer_id)
            )

            -- rule unparseable_date: ts does not parse with date_format (ISO 8601 when null;
            --     an explicit UTC offset is converted to UTC).
            when ts_value is null then struct_pack(
                reason := 'unparseable_date',
                detail := case
                    when $date_format is not null and not $ts_is_native then printf(
                        'ts (source column "%s"): %s does not match date_format ''%s''',
                        $source_ts, cg_show(ts), $date_format
                    )
                    else printf(
                        'ts (source column "%s"): %s is not an ISO 8601 date or timestamp '
                        || '(set ingest.source.date_format)',
                        $source_ts, cg_show(ts)
                    )
                end
            )

            -- rule non_numeric_amount: amount is not a number after removing
            --     thousands_separator (digits must be grouped by three) and reading
            --     decimal_separator.
            when amount_value is null then struct_pack(
                reason := 'non_numeric_amount',
                detail := printf(
                    'amount (source column "%s"): %s is not a number (%s)',
                    $source_amount, cg_show(amount), number_settings
                )
            )

            -- rule non_numeric_quantity: quantity is mapped, non-blank and not a number.
            when quantity_clean is not null and quantity_value is null then struct_pack(
                reason := 'non_numeric_quantity',
                detail := printf(
                    'quantity (source column "%s"): %s is not a number (%s)',
                    $source_quantity, cg_show(quantity), number_settings
                )
            )

            -- rule date_after_as_of: the date of ts is after as_of.
            when cast(ts_value as date) > cast($as_of as date) then struct_pack(
                reason := 'date_after_as_of',
                detail := printf(
                    'ts (source column "%s"): %s is after as_of %s',
                    $source_ts,
                    strftime(ts_value, '%Y-%m-%d %H:%M:%S'),
                    strftime(cast($as_of as date), '%Y-%m-%d')
                )
            )

            -- rule exact_duplicate: every mapped raw value equals an earlier row's (the first
            --     is kept; only with drop_exact_duplicates).
            when first_same_row < source_row then struct_pack(
                reason := 'exact_duplicate',
                detail := printf(
                    'same raw values in every mapped column as source_row %d', first_same_row
                )
            )
        end as failure
    from first_rows
    cross join number_settings
),

final as (
    select
        source_row,
        -- raw text, for the quarantine
        customer_id,
        order_id,
        ts,
        amount,
        quantity,
        account_manager,
        customer_name,
        region,
        product_id,
        -- cleaned and parsed values, for the clean rows
        customer_id_clean,
        order_id_clean,
        ts_value,
        amount_value,
        quantity_value,
        account_manager_clean,
        customer_name_clean,
        region_clean,
        product_id_clean,
        failure.reason as reason,
        failure.detail as detail
    from failures
)

select * from final
