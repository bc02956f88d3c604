-- Helpers for the ingest programs (ingest_validate.sql and the whitespace reader).
-- Run once per connection by churnguard.ingest, before anything is read.

-- Text with blanks trimmed at both ends (space, tab, LF, CR, no-break space, BOM);
-- an empty result is NULL.
create or replace temp macro cg_clean(x) as
    nullif(
        trim(cast(x as varchar), chr(32) || chr(9) || chr(10) || chr(13) || chr(160) || chr(65279)),
        ''
    );

-- Text as people should see it (names, managers, regions): characters that break lines
-- (tab, CR, LF, VT, FF, NEL, U+2028/2029) become a space; other C0/C1 control characters,
-- the bidirectional controls (U+061C, U+200E/200F, U+202A-202E, U+2066-2069) and invisible
-- formatting characters (zero-width space U+200B, word joiner and invisible operators
-- U+2060-2064, BOM U+FEFF, interlinear annotation U+FFF9-FFFB, tag characters
-- U+E0000-E007F) are removed. ZWNJ and ZWJ (U+200C/200D) stay: Persian and Arabic
-- spelling needs them.
create or replace temp macro cg_visible(x) as
    regexp_replace(
        regexp_replace(cast(x as varchar), '[\t\n\r\x0B\x0C\x{85}\x{2028}\x{2029}]', ' ', 'g'),
        '[\x00-\x08\x0E-\x1F\x7F-\x{84}\x{86}-\x{9F}\x{61C}\x{200B}\x{200E}\x{200F}\x{202A}-\x{202E}\x{2060}-\x{2064}\x{2066}-\x{2069}\x{FEFF}\x{FFF9}-\x{FFFB}\x{E0000}-\x{E007F}]',
        '',
        'g'
    );

-- Whether text holds a character cg_visible would change or remove (an identifier holding
-- one is quarantined: identifiers are never altered).
create or replace temp macro cg_has_hidden(x) as
    regexp_matches(
        cast(x as varchar),
        '[\x00-\x1F\x7F-\x{9F}\x{61C}\x{200B}\x{200E}\x{200F}\x{202A}-\x{202E}\x{2028}\x{2029}\x{2060}-\x{2064}\x{2066}-\x{2069}\x{FEFF}\x{FFF9}-\x{FFFB}\x{E0000}-\x{E007F}]'
    );

-- At most n characters: longer text keeps n - 1 of them and ends with "…".
create or replace temp macro cg_cap(x, n) as
    case when length(x) > n then left(x, n - 1) || '…' else x end;

-- A raw value as quarantine messages show it: quoted, invisible characters removed, at
-- most 80 characters, or "empty".
create or replace temp macro cg_show(x) as
    coalesce('''' || left(cg_visible(x), 80) || '''', 'empty');

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
