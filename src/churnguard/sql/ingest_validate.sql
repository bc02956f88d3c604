-- Ingest validation: every source row, cleaned and parsed, with the first rule it fails
-- (reason NULL = clean) and a message (detail). churnguard.ingest stores the result as
-- the temp table `checked`; ingest_transactions.sql, ingest_quarantine.sql and
-- ingest_report.sql read it.
--
-- Input: the view raw_lines, made by churnguard.ingest from the source file. It is the
-- only SQL built from the configuration (the reader call, and the user's column names
-- renamed to canonical ones); this program reads canonical names only:
--   source_row          1-based data record of the source (blank lines not counted)
--   n_fields            fields on the line when the file was split by churnguard
--                       (whitespace-separated, or read record by record), else NULL
--   parse_problem       'quote' or 'encoding' when the record could not be parsed, else NULL
--   parse_detail, raw_line
--                       the parser's message (with the line number) and the record's text
--   customer_id, order_id, ts, amount, quantity, account_manager, customer_name,
--   region, product_id  raw text as read (NULL when the column is not mapped)
--   ts_native, amount_native, quantity_native
--                       the value as the source typed it (Parquet DATE/TIMESTAMP or
--                       numeric column), else NULL
--   exclude_values      raw text of each ingest.exclude rule's column, in rule order
--
-- Parameters:
--   $source_customer_id, $source_ts, $source_amount, $source_quantity
--                       source column names (messages only)
--   $ts_is_native, $amount_is_native, $quantity_is_native
--                       use the *_native value instead of parsing text
--   $date_format        strptime format; NULL = ISO 8601 (an explicit UTC offset is
--                       converted to UTC)
--   $decimal_separator, $thousands_separator (NULL = none)
--   $expected_fields    fields a line must have when n_fields is known
--   $exclude_rules      the ingest.exclude rules (name, column_name, kind in/not_in/range,
--                       vals, ignore_case, low/high number or date, condition)
--   $default_amount     the amount of every line when the source has none (NULL = read it)
--   $amount_min, $amount_max
--   $max_text_length    names, managers and regions are cut to this many characters;
--                       a longer customer id is quarantined
--   $as_of              rows dated after it are quarantined (NULL = no limit)
--   $drop_exact_duplicates

with

lines as (
    select
        source_row,
        n_fields,
        parse_problem,
        parse_detail,
        raw_line,
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
        quantity_native,
        exclude_values
    from raw_lines
),

-- the ingest.exclude rules, one row each, numbered in the order given
exclude_rules as (
    select
        generate_subscripts(rules, 1) as rule_index,
        unnest(rules, recursive := true)
    from (
        select cast($exclude_rules as struct(
            name varchar, column_name varchar, kind varchar, vals varchar[],
            ignore_case boolean, low_number double, high_number double, low_date date,
            high_date date, condition varchar
        )[]) as rules
    )
),

-- each parsed row's rule value, as text (blank = ''), number and date, per rule
rule_values as (
    select
        lines.source_row,
        exclude_rules.*,
        coalesce(cg_clean(lines.exclude_values[exclude_rules.rule_index]), '') as rule_text,
        coalesce(
            cg_number(
                cg_clean(lines.exclude_values[exclude_rules.rule_index]),
                cast($thousands_separator as varchar),
                cast($decimal_separator as varchar)
            ),
            try_cast(cg_clean(lines.exclude_values[exclude_rules.rule_index]) as double)
        ) as rule_number,
        cast(coalesce(
            try_strptime(
                cg_clean(lines.exclude_values[exclude_rules.rule_index]),
                cast(coalesce($date_format, '%Y-%m-%d') as varchar)
            ),
            try_cast(cg_clean(lines.exclude_values[exclude_rules.rule_index]) as timestamp)
        ) as date) as rule_date
    from lines
    cross join exclude_rules
    where lines.parse_problem is null
),

-- the first rule each row matches (a value a range rule cannot read matches nothing)
exclusions as (
    select
        source_row,
        arg_min(
            struct_pack(
                name := name,
                column_name := column_name,
                condition := condition,
                value := rule_text
            ),
            rule_index
        ) as excluded_by
    from rule_values
    where case kind
        when 'range' then coalesce(
            rule_number < low_number
            or rule_number > high_number
            or rule_date < low_date
            or rule_date > high_date,
            false
        )
        else list_contains(
            case when ignore_case then list_transform(vals, lambda v: lower(v)) else vals end,
            case when ignore_case then lower(rule_text) else rule_text end
        ) = (kind = 'in')
    end
    group by source_row
),

-- blanks trimmed (space, tab, CR, LF, no-break space, BOM); an empty field is NULL. Text
-- people read (names, managers, regions) also loses invisible characters (cg_visible)
-- and is cut to max_text_length characters.
cleaned as (
    select
        lines.*,
        exclusions.excluded_by,
        cg_clean(customer_id) as customer_id_clean,
        cg_clean(order_id) as order_id_clean,
        cg_clean(ts) as ts_clean,
        cg_clean(amount) as amount_clean,
        cg_clean(quantity) as quantity_clean,
        cg_clean(cg_visible(account_manager)) as account_manager_visible,
        cg_clean(cg_visible(customer_name)) as customer_name_visible,
        cg_clean(cg_visible(region)) as region_visible,
        cg_clean(product_id) as product_id_clean
    from lines
    left join exclusions using (source_row)
),

-- timestamps and numbers; NULL when the text does not parse (typed Parquet values are
-- used as they are, except that a NaN or infinite number is no number)
parsed as (
    select
        *,
        cg_cap(account_manager_visible, $max_text_length) as account_manager_clean,
        cg_cap(customer_name_visible, $max_text_length) as customer_name_clean,
        cg_cap(region_visible, $max_text_length) as region_clean,
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
            when $default_amount is not null then cast($default_amount as double)
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
-- when duplicates are kept. Unparsed and excluded rows are nobody's original.
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
    from cleaned
    where $drop_exact_duplicates and parse_problem is null and excluded_by is null
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
-- quarantine message. churnguard.ingest_rules reads the reason codes (REASONS, the report's
-- reason list), the "-- rule <reason>: ..." comments (describe_rules, the docs) and
-- their "Fix: ..." (the hint when a reason quarantines too much) from this CASE. A rule
-- whose setting is off never fires (its check is NULL or false).
failures as (
    select
        *,
        case
            -- rule wrong_field_count: a line with a different number of fields than the
            --     header (or than the first line without a header): too few or too many
            --     delimiters, or (delimiter: whitespace) a missing or extra value. Fix:
            --     check ingest.source.delimiter and ingest.source.quote.
            when n_fields <> $expected_fields then struct_pack(
                reason := 'wrong_field_count',
                detail := coalesce(parse_detail, 'line')
                    || printf(' has %d fields, expected %d', n_fields, $expected_fields)
            )

            -- rule broken_quoting: a quote that does not close where it should (text after
            --     a closing quote, or a quoted field that runs over lines without making a
            --     record: only its first line is quarantined, the next lines are read
            --     again), or a bare carriage return inside an unquoted field. Fix: check
            --     ingest.source.quote (set it to '' if fields are never quoted).
            when parse_problem = 'quote' then struct_pack(
                reason := 'broken_quoting',
                detail := parse_detail
            )

            -- rule undecodable_bytes: a line holding bytes that are not text in
            --     ingest.source.encoding. Fix: check ingest.source.encoding.
            when parse_problem = 'encoding' then struct_pack(
                reason := 'undecodable_bytes',
                detail := printf('%s (ingest.source.encoding)', parse_detail)
            )

            -- rule excluded_by_rule: the row matches an ingest.exclude rule (the first that
            --     matches names the reason, excluded_by_rule:<name>); kept here, left out of
            --     the clean data, and not counted against max_quarantine_share.
            when excluded_by is not null then struct_pack(
                reason := 'excluded_by_rule:' || excluded_by.name,
                detail := printf(
                    'column "%s" is %s, which matches ingest.exclude rule ''%s'' (%s)',
                    excluded_by.column_name,
                    cg_show(nullif(excluded_by.value, '')),
                    excluded_by.name,
                    excluded_by.condition
                )
            )

            -- rule missing_customer_id: blank or missing customer id.
            when customer_id_clean is null then struct_pack(
                reason := 'missing_customer_id',
                detail := printf('customer_id (source column "%s") is empty', $source_customer_id)
            )

            -- rule invalid_customer_id: a customer id holding control, bidirectional or
            --     invisible characters, or longer than max_text_length (ids are never
            --     altered, so such a row cannot be cleaned). Fix: check
            --     ingest.source.columns.customer_id, or raise ingest.max_text_length.
            when cg_has_hidden(customer_id_clean)
                or length(customer_id_clean) > $max_text_length then struct_pack(
                reason := 'invalid_customer_id',
                detail := printf(
                    'customer_id (source column "%s") %s',
                    $source_customer_id,
                    case
                        when cg_has_hidden(customer_id_clean)
                            then 'holds control, bidirectional or invisible characters'
                        else printf(
                            'is %d characters long, more than ingest.max_text_length %d',
                            length(customer_id_clean), $max_text_length
                        )
                    end
                )
            )

            -- rule unparseable_date: ts does not parse with date_format (ISO 8601 when null;
            --     an explicit UTC offset is converted to UTC). Fix: set
            --     ingest.source.date_format.
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
            --     decimal_separator. Fix: check ingest.source.decimal_separator and
            --     ingest.source.thousands_separator.
            when amount_value is null then struct_pack(
                reason := 'non_numeric_amount',
                detail := printf(
                    'amount (source column "%s"): %s is not a number (%s)',
                    $source_amount, cg_show(amount), number_settings
                )
            )

            -- rule amount_out_of_range: amount below amount_range.min or above
            --     amount_range.max (1e308 and typos with a dozen zeros). Fix: check the
            --     amounts, or widen ingest.amount_range.
            when amount_value < $amount_min or amount_value > $amount_max then struct_pack(
                reason := 'amount_out_of_range',
                detail := printf(
                    'amount (source column "%s"): %s is outside ingest.amount_range [%g, %g]',
                    $source_amount, cg_show(amount), $amount_min, $amount_max
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

            -- rule date_after_as_of: the date of ts is after as_of. Fix: fix the dates, or
            --     set ingest.as_of.
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
            --     is kept; only with drop_exact_duplicates). Fix: without an order id
            --     (ingest.source.columns.order_id), two purchases by one customer on one
            --     day look identical: if they are genuine repeat purchases, set
            --     ingest.drop_exact_duplicates: false.
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
        raw_line,
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
        -- what text hygiene changed, for the report's counts
        account_manager_visible is distinct from cg_clean(account_manager)
            as account_manager_invisible_removed,
        account_manager_clean is distinct from account_manager_visible
            as account_manager_truncated,
        customer_name_visible is distinct from cg_clean(customer_name)
            as customer_name_invisible_removed,
        customer_name_clean is distinct from customer_name_visible as customer_name_truncated,
        region_visible is distinct from cg_clean(region) as region_invisible_removed,
        region_clean is distinct from region_visible as region_truncated,
        failure.reason as reason,
        failure.detail as detail
    from failures
)

select * from final
