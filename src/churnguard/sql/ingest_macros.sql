-- Helpers for the ingest programs (ingest_validate.sql and the whitespace reader).
-- Run once per connection by churnguard.ingest, before anything is read.

-- Text with blanks trimmed at both ends (space, tab, LF, CR, no-break space, BOM);
-- an empty result is NULL.
create or replace temp macro cg_clean(x) as
    nullif(
        trim(cast(x as varchar), chr(32) || chr(9) || chr(10) || chr(13) || chr(160) || chr(65279)),
        ''
    );

-- A raw value as quarantine messages show it: quoted, at most 80 characters, or "empty".
create or replace temp macro cg_show(x) as
    coalesce('''' || left(cast(x as varchar), 80) || '''', 'empty');

-- Number text in plain form: the thousands separator (NULL = none) removed, the decimal
-- separator turned into a point.
create or replace temp macro cg_plain_number(x, thousands, decimal_separator) as
    replace(coalesce(replace(x, thousands, ''), x), decimal_separator, '.');

-- Whether a thousands separator in x groups the digits before the decimal separator by
-- three (\d\d?\d? is one to three digits): "1,234.5" yes, "12,5" no. True without one.
create or replace temp macro cg_grouped_by_three(x, thousands, decimal_separator) as
    thousands is null
    or not contains(x, thousands)
    or regexp_full_match(
        x, '[+-]?\d\d?\d?([' || thousands || ']\d\d\d)+([' || decimal_separator || ']\d*)?([eE][+-]?\d+)?'
    );

-- Cleaned text as a DOUBLE, NULL when it is not a plain finite number (digits, one
-- optional point, an optional exponent; no "nan", "inf" or hex). Callers pass the
-- separators cast to VARCHAR.
create or replace temp macro cg_number(x, thousands, decimal_separator) as
    case
        when cg_grouped_by_three(x, thousands, decimal_separator)
            and regexp_full_match(
                cg_plain_number(x, thousands, decimal_separator), '[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?'
            )
            and isfinite(try_cast(cg_plain_number(x, thousands, decimal_separator) as double))
            then try_cast(cg_plain_number(x, thousands, decimal_separator) as double)
    end;
