"""Every string the code marks for translation has a real, non-fuzzy nb translation.

The catalog is read from disk, so entries other features append are checked the same way.
"""

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
METHOD_MAP = [("crm/**.py", "python"), ("templates/**.html", "jinja2"), ("templates/**.txt", "jinja2")]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None, "lazy_ngettext": (1, 2)}


def _extracted() -> dict[str, str]:
    """msgid -> where it was found (the first place)."""
    found: dict[str, str] = {}
    for filename, _lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map=METHOD_MAP, keywords=KEYWORDS, options_map={"**.html": {}, "**.txt": {}}
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid:
            found.setdefault(msgid, filename)
    return found


def _catalog():
    with (ROOT / "crm/translations/nb/LC_MESSAGES/messages.po").open("rb") as po_file:
        return read_po(po_file, locale="nb")


def test_the_code_marks_strings_for_translation():
    extracted = _extracted()
    assert "Skip to content" in extracted  # a template string
    assert "Audit log" in extracted  # a lazy string in Python


def test_every_extracted_string_has_an_nb_translation():
    catalog = _catalog()
    missing = []
    for msgid, where in sorted(_extracted().items()):
        message = catalog.get(msgid)
        strings = message.string if message else None
        untranslated = not all(strings) if isinstance(strings, tuple | list) else not strings
        if message is None or untranslated or message.fuzzy:
            missing.append(f"{where}: {msgid!r}")
    assert not missing, "nb translations missing or fuzzy:\n" + "\n".join(missing)


def test_the_nb_catalog_has_no_fuzzy_or_empty_entries():
    bad = [message.id for message in _catalog() if message.id and (message.fuzzy or not message.string)]
    assert not bad
