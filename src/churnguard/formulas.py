"""Which text cells a spreadsheet would run as a formula (pure; no file is read or written).

:mod:`churnguard.csvsafe` neutralises such cells in the CSVs it writes; ``summary.json``
counts the customer ids that look like one (ids are written exactly, never altered).
"""

from __future__ import annotations

import unicodedata

# A text cell starting with one of these is prefixed with "'" (OWASP CSV injection advice;
# leading tab/CR/LF included, and the full-width forms some East Asian spreadsheets accept).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")
# ... and so is one where these follow leading whitespace or invisible (category C*) characters.
_FORMULA_CHARS = ("=", "+", "-", "@", "＝", "＋", "－", "＠")


def _lstrip_invisible(value: str) -> str:
    """``value`` without its leading whitespace and control/format characters (category C*)."""
    for i, ch in enumerate(value):
        if not (ch.isspace() or unicodedata.category(ch)[0] == "C"):
            return value[i:]
    return ""


def is_formula_like(value: str) -> bool:
    """Would a spreadsheet (or the OWASP rule) treat this text cell as a formula?"""
    return value.startswith(FORMULA_PREFIXES) or _lstrip_invisible(value).startswith(_FORMULA_CHARS)
