"""The README's configuration table lists exactly the environment variables ``crm/config.py`` reads."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

READ = re.compile(
    r"""(?:environ\.get|env\.get|_bool)\(\s*["']([A-Z][A-Z0-9_]*)["']|environ\[["']([A-Z][A-Z0-9_]*)["']\]"""
)
TABLE_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*)` \|", re.MULTILINE)


def variables_read_by_config() -> set[str]:
    source = (ROOT / "crm" / "config.py").read_text()
    return {a or b for a, b in READ.findall(source)}


def test_config_reads_the_variables_we_expect():
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "MAIL_SERVER", "CRM_ENV"} <= variables_read_by_config()


def test_readme_table_lists_every_variable_config_reads_and_no_other():
    documented = set(TABLE_ROW.findall((ROOT / "README.md").read_text()))
    read = variables_read_by_config()
    assert sorted(read - documented) == [], "add these to README.md's configuration table"
    assert sorted(documented - read) == [], "README.md documents variables crm/config.py does not read"
