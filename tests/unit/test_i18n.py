"""Languages as data: the catalogues are complete and current, Arabic has its six plural
forms, compiled and in-memory catalogues agree, labels round-trip, templates get what
they need (direction, <bdi>, formats), and each manager reads their own language."""

from __future__ import annotations

import gettext
import os
import re
import shutil
from pathlib import Path

import pytest
from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po

from churnguard import i18n
from churnguard.config import LANGUAGES, ReportParams, ScoreParams
from churnguard.i18n import (
    bdi,
    catalogue_source,
    compile_po,
    direction,
    jinja_environment,
    label,
    labels,
    left_list_action,
    manager_languages,
    parse_outcome,
    translations,
    translator,
    unmatched_managers,
)
from churnguard.localfmt import LocalFormat

REPO = Path(__file__).resolve().parents[2]
LOCALE = REPO / "src" / "churnguard" / "locale"
# the extraction `make messages` runs (docs/i18n.md)
EXTRACT = ["-k", "NP_:1c,2", "-c", "TRANSLATORS:", "--add-location=file"]
TRANSLATED = ("ar", "fa")  # en is the source language: its msgstr stay empty
PLURAL_FORMS = {
    "en": "nplurals=2; plural=(n != 1);",
    "ar": (
        "nplurals=6; plural=(n == 0 ? 0 : n == 1 ? 1 : n == 2 ? 2 : n % 100 >= 3 && "
        "n % 100 <= 10 ? 3 : n % 100 >= 11 && n % 100 <= 99 ? 4 : 5);"
    ),
    "fa": "nplurals=2; plural=(n > 1);",
}
ARABIC_ONLY = "\u064a\u0643"  # ي ك: Arabic yeh and kaf
PERSIAN_ONLY = "\u06cc\u06a9"  # ی ک: Persian yeh and keheh


def catalogue(language: str):
    with open(LOCALE / language / "LC_MESSAGES" / "churnguard.po", "rb") as fh:
        return read_po(fh, locale=language)


def keys(cat) -> set[tuple[str | None, str]]:
    return {(m.context, m.id if isinstance(m.id, str) else m.id[0]) for m in cat if m.id}


def extract(root: Path, out: Path, mapping: Path = REPO / "babel.cfg") -> set:
    """Run the project's `pybabel extract` on ``root`` (a folder laid out like
    src/churnguard) and return the messages it finds."""
    CommandLineInterface().run(
        ["pybabel", "-q", "extract", "-F", str(mapping), *EXTRACT, "-o", str(out), str(root)]
    )
    with open(out, "rb") as fh:
        return keys(read_po(fh))


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> set[tuple[str | None, str]]:
    out = tmp_path_factory.mktemp("pot") / "churnguard.pot"
    return extract(REPO / "src" / "churnguard", out)


def test_the_template_holds_every_message_in_the_code(extracted):
    with open(LOCALE / "churnguard.pot", "rb") as fh:
        template = keys(read_po(fh))
    assert extracted, "nothing extracted"
    assert template == extracted, (
        "src/churnguard/locale/churnguard.pot is stale: run `make messages` "
        f"(new: {sorted(extracted - template, key=str)}, gone: {sorted(template - extracted, key=str)})"
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_catalogue_has_every_message_and_no_stale_one(language, extracted):
    cat = catalogue(language)
    assert keys(cat) == extracted, f"run `make messages` to update {language}"
    assert not cat.obsolete, f"{language} keeps obsolete messages: {list(cat.obsolete)}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated_and_none_is_fuzzy(language):
    cat = catalogue(language)
    assert not cat.fuzzy, f"the {language} catalogue's header is fuzzy: pybabel compile skips it"
    missing = [
        m.id
        for m in cat
        if m.id
        and (
            "fuzzy" in m.flags
            or not all(m.string if isinstance(m.string, tuple) else (m.string,))
            or (isinstance(m.string, tuple) and len(m.string) != cat.num_plurals)
        )
    ]
    assert not missing, f"{language}: untranslated or fuzzy: {missing}"


def _fields(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text)) | set(re.findall(r"%\((\w+)\)s", text))


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_the_placeholders(language):
    """A translation may not invent a placeholder nor drop one; only a plural form may
    leave out the count (Arabic says "يومين", two days, without the number)."""
    for m in catalogue(language):
        if not m.id:
            continue
        if isinstance(m.id, str):
            assert _fields(m.string) == _fields(m.id), (m.id, m.string)
            continue
        wanted = _fields(m.id[0]) | _fields(m.id[1])
        count = re.search(r"\{(\w+)\}|%\((\w+)\)s", m.id[0])
        count_name = next(g for g in count.groups() if g) if count else None
        for form in m.string:
            assert _fields(form) <= wanted, (m.id, form)
            assert wanted - {count_name} <= _fields(form), (m.id, form)


@pytest.mark.parametrize(
    ("language", "forbidden"), [("fa", ARABIC_ONLY), ("ar", PERSIAN_ONLY)], ids=["fa", "ar"]
)
def test_each_language_uses_its_own_letters(language, forbidden):
    """Persian is written with ی and ک, Arabic with ي and ك: a wrong one looks alike but
    breaks search, sorting and matching names."""
    for m in catalogue(language):
        for text in m.string if isinstance(m.string, tuple) else (m.string,):
            assert not set(text) & set(forbidden), (m.id, text)


@pytest.mark.parametrize("language", LANGUAGES)
def test_plural_forms_header(language):
    assert catalogue(language).plural_forms == PLURAL_FORMS[language]
    assert translations(language).plural(11) == {"en": 1, "ar": 4, "fa": 1}[language]


@pytest.mark.parametrize(
    ("n", "form", "expected"),
    [
        (0, 0, "0 يوم"),
        (1, 1, "يوم واحد"),
        (2, 2, "يومين"),
        (3, 3, "3 أيام"),
        (11, 4, "11 يومًا"),
        (100, 5, "100 يوم"),
        (102, 5, "102 يوم"),
        (103, 3, "103 أيام"),
        (111, 4, "111 يومًا"),
    ],
    ids=lambda v: str(v),
)
def test_arabic_counts_take_six_plural_forms(n, form, expected):
    tr = translations("ar")
    assert tr.plural(n) == form
    assert tr.ngettext("{n} day", "{n} days", n).format(n=n) == expected


def test_zero_one_two_three_eleven_and_a_hundred_orders_read_differently_in_arabic():
    ngettext = i18n.ngettext("ar")
    msg = "{now} order(s) in the last 90 days against {before} in the 90 before"
    texts = [ngettext(msg, msg, n).format(now=n, before=5) for n in (0, 1, 2, 3, 11, 100)]
    assert len(set(texts)) == 6
    assert texts[1].startswith("طلب واحد") and texts[2].startswith("طلبان")
    assert texts[3].startswith("3 طلبات") and texts[4].startswith("11 طلبًا")
    assert texts[5].startswith("100 طلب ")


def test_persian_counts_one_and_many_alike_and_english_keeps_its_words():
    assert i18n.ngettext("fa")("{n} day", "{n} days", 3).format(n=3) == "3 روز"
    assert i18n.ngettext("en")("{n} day", "{n} days", 1).format(n=1) == "1 day"
    assert i18n.gettext("en")("Recency unknown") == "Recency unknown"
    assert i18n.gettext("fa")("Recency unknown") == "تاریخ آخرین سفارش معلوم نیست"


@pytest.mark.parametrize("language", LANGUAGES)
def test_compiling_in_memory_gives_what_pybabel_compile_gives(language, tmp_path):
    po = LOCALE / language / "LC_MESSAGES" / "churnguard.po"
    mo = tmp_path / "churnguard.mo"
    CommandLineInterface().run(
        ["pybabel", "-q", "compile", "-D", "churnguard", "-l", language, "-i", str(po)]
        + ["-o", str(mo)]
    )
    with open(mo, "rb") as fh:
        compiled = gettext.GNUTranslations(fh)
    in_memory = compile_po(po.read_bytes(), language)
    assert compiled._catalog == in_memory._catalog  # type: ignore[attr-defined]
    assert compiled.plural(11) == in_memory.plural(11)


def test_the_loader_reads_a_current_mo_and_falls_back_to_the_po(tmp_path, monkeypatch):
    """The install compiles .mo files; without one (a plain pip install), or with one older
    than its .po (the .po was edited after the install), the .po is compiled in memory."""
    po, mo = tmp_path / "churnguard.po", tmp_path / "churnguard.mo"
    shutil.copy(LOCALE / "fa" / "LC_MESSAGES" / "churnguard.po", po)
    monkeypatch.setattr(i18n, "catalogue_files", lambda language: (po, mo))
    i18n._load.cache_clear()
    try:
        assert catalogue_source("fa") == "po"
        CommandLineInterface().run(
            ["pybabel", "-q", "compile", "-l", "fa", "-i", str(po), "-o", str(mo)]
        )
        i18n._load.cache_clear()
        assert catalogue_source("fa") == "mo"
        assert translations("fa").gettext("No action this week") == "این هفته اقدامی لازم نیست"
        stat = mo.stat()
        os.utime(po, (stat.st_atime, stat.st_mtime + 10))  # the .po edited after the install
        i18n._load.cache_clear()
        assert catalogue_source("fa") == "po"
    finally:
        i18n._load.cache_clear()


def test_an_unknown_language_is_refused():
    with pytest.raises(ValueError, match="unknown language 'de'"):
        translations("de")
    with pytest.raises(ValueError, match="unknown language"):
        direction("tr")


def test_direction():
    assert [direction(lang) for lang in LANGUAGES] == ["ltr", "rtl", "rtl"]


def test_bdi_isolates_and_escapes():
    assert str(bdi("C0001358")) == "<bdi>C0001358</bdi>"
    assert str(bdi("<b>Ali</b> & co")) == "<bdi>&lt;b&gt;Ali&lt;/b&gt; &amp; co</bdi>"
    assert str(bdi(None)) == "" and str(bdi(float("nan"))) == ""


@pytest.mark.parametrize(
    ("kind", "code", "language", "expected"),
    [
        ("risk_band", "high", "en", "high"),
        ("risk_band", "high", "fa", "بالا"),
        ("risk_band", "lapsed", "ar", "منقطع"),
        ("value_tier", "high", "ar", "مرتفعة"),
        ("change", "new", "fa", "جدید"),
        ("change", "de-escalated", "ar", "انخفض الخطر"),
        ("owner", "account manager", "fa", "مدیر حساب"),
        ("owner", "account_manager", "ar", "مدير الحساب"),
        ("channel", "sms", "en", "SMS"),
        ("channel", "phone", "fa", "تلفن"),
        ("channel", "carrier pigeon", "fa", "carrier pigeon"),
        ("outcome", "wrong contact", "ar", "بيانات اتصال خاطئة"),
        ("change", None, "fa", ""),
    ],
    ids=lambda v: str(v),
)
def test_labels(kind, code, language, expected):
    assert label(kind, code, language) == expected


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_code_has_a_distinct_label(language):
    for kind in i18n.LABELS:
        shown = labels(kind, language)
        codes = [c for c in shown if not (kind == "owner" and c == "account_manager")]
        assert len({shown[c] for c in codes}) == len(codes), (kind, shown)


@pytest.mark.parametrize("language", LANGUAGES)
def test_outcomes_read_back_from_any_language(language):
    for code, shown in labels("outcome", language).items():
        assert parse_outcome(shown) == code
        assert parse_outcome(f"  {shown.upper()}  ") == code
        assert parse_outcome(code) == code
    assert parse_outcome("maybe") is None
    assert parse_outcome("") is None and parse_outcome(None) is None


def test_left_list_actions_per_language():
    assert left_list_action("recovered", "en") == "Bought again: thank them"
    assert left_list_action("off list", "fa") == "این هفته اقدامی لازم نیست"
    assert left_list_action("recovered", "ar") == "عاد إلى الشراء: اشكره على ثقته"


def test_a_jinja_page_in_persian_is_translated_escaped_and_formatted():
    fmt = LocalFormat(language="fa", currency="IRR", calendar="persian", native_digits=True)
    env = jinja_environment("fa", fmt=fmt)
    page = env.from_string(
        '<html lang="{{ lang }}" dir="{{ dir }}">'
        "<p>{{ _('No action this week') }}</p>"
        "<p>{{ ngettext('{n} day', '{n} days', 3) }}</p>"
        "<p>{{ pgettext('risk band', 'high') }} / {{ label('change', 'new') }}</p>"
        "<p>{{ name|bdi }} {{ 1234567|money }} {{ 0.125|percent }} {{ day|date }}</p>"
        "<p>{% trans %}Recency unknown{% endtrans %}</p></html>"
    )
    html = page.render(name="<script>Ali</script>", day="2024-06-03")
    assert html == (
        '<html lang="fa" dir="rtl"><p>این هفته اقدامی لازم نیست</p><p>{n} روز</p>'
        "<p>بالا / جدید</p>"
        "<p><bdi>&lt;script&gt;Ali&lt;/script&gt;</bdi> \u200eریال\xa0۱٬۲۳۴٬۵۶۷ ۱۲٫۵٪ "
        "۱۴ خرداد ۱۴۰۳</p><p>تاریخ آخرین سفارش معلوم نیست</p></html>"
    )
    assert "<script>" not in env.from_string("{{ x }}").render(x="<script>")


def test_jinja_templates_are_extracted_too(tmp_path):
    """The babel.cfg mapping reads the report templates that are coming
    (src/churnguard/templates/*.j2) with Jinja2's i18n extractor."""
    root = tmp_path / "churnguard"
    (root / "templates").mkdir(parents=True)
    (root / "templates" / "page.html.j2").write_text(
        "{% trans %}Key figures{% endtrans %} {{ _('Top customers') }} "
        "{{ ngettext('%(num)s order', '%(num)s orders', n) }} {{ pgettext('column', 'rank') }}",
        encoding="utf-8",
    )
    (root / "code.py").write_text("_('From code')\nNP_('ctx', 'marked')\n", encoding="utf-8")
    found = extract(root, tmp_path / "out.pot")
    assert found == {
        (None, "Key figures"),
        (None, "Top customers"),
        (None, "%(num)s order"),
        ("column", "rank"),
        (None, "From code"),
        ("ctx", "marked"),
    }


def test_each_manager_reads_their_language():
    sp = ScoreParams(manager_languages={"Sara Ahmadi": "fa", "خالد الشمري": "ar"})
    rp = ReportParams(language="en")
    managers = ["Sara Ahmadi", "خالد الشمري", "Tom Lee", "Sara Ahmadi"]
    assert manager_languages(managers, sp, rp) == {
        "Sara Ahmadi": "fa",
        "Tom Lee": "en",
        "خالد الشمري": "ar",
    }
    assert manager_languages(["Tom Lee"], sp, ReportParams(language="ar")) == {"Tom Lee": "ar"}
    # a name written with Arabic ي where the data has Persian ی matches nobody: say so
    sp = ScoreParams(manager_languages={"مريم رضايي": "fa"})
    assert unmatched_managers(["مریم رضایی"], sp) == ["مريم رضايي"]


def test_a_translator_carries_its_formats():
    tr = translator("fa", native_digits=True, currency="IRR")
    assert tr.gettext("No action this week") == "این هفته اقدامی لازم نیست"
    assert tr.fmt.money(1500) == "\u200eریال\xa0۱٬۵۰۰"
    with pytest.raises(ValueError, match="formats for 'en'"):
        i18n.Translator("fa", LocalFormat(language="en"))
