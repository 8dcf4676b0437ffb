"""The README's configuration table is generated from the settings and must stay in sync."""

from __future__ import annotations

from api.settings import ApiSettings
from devstack.settings_doc import README, table, updated_readme


def test_every_setting_is_explained() -> None:
    rows = [line for line in table().splitlines()[2:]]
    assert len(rows) == len(ApiSettings.model_fields)
    undocumented = [row.split("|")[1] for row in rows if not row.split("|")[4].strip()]
    assert undocumented == []


def test_readme_table_matches_the_settings() -> None:
    text = README.read_text()
    assert updated_readme(text) == text, "run `python -m devstack.settings_doc --write`"
