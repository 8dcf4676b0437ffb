"""Generate the README's configuration table from the settings classes.

Descriptions are the comment lines directly above each field in the source, so the code stays
the single place where a setting is explained. `python -m devstack.settings_doc` prints the
table; `--write` updates README.md between its settings-table markers.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import sys
from pathlib import Path

from pydantic import AliasChoices, SecretStr
from pydantic_settings import BaseSettings

from api.settings import ApiSettings
from shared.settings import Settings

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def _comments(cls: type) -> dict[str, str]:
    """Field name → the comment block right above its definition in the class body."""
    lines, _ = inspect.getsourcelines(cls)
    tree = ast.parse("".join(lines))
    class_def = next(n for n in tree.body if isinstance(n, ast.ClassDef))
    out: dict[str, str] = {}
    for node in class_def.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            block: list[str] = []
            row = node.lineno - 2  # 0-based index of the line above
            while row >= 0 and lines[row].strip().startswith("#"):
                block.insert(0, lines[row].strip().lstrip("#").strip())
                row -= 1
            out[node.target.id] = " ".join(block)
    return out


def _env_names(cls: type[BaseSettings], name: str) -> str:
    field = cls.model_fields[name]
    alias = field.validation_alias
    if isinstance(alias, str):
        return f"`{alias}`"
    if isinstance(alias, AliasChoices):
        return " or ".join(f"`{c}`" for c in alias.choices if isinstance(c, str))
    return f"`CODEX_CLOUD_{name.upper()}`"


def _default(cls: type[BaseSettings], name: str) -> str:
    field = cls.model_fields[name]
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, SecretStr):
        return "(secret; local-only default)"
    if value is None:
        return "unset"
    if value == "":
        return '""'
    return f"`{value}`"


def table() -> str:
    rows = ["| variable | default | used by | meaning |", "|---|---|---|---|"]
    sources: list[tuple[type[BaseSettings], str, set[str]]] = [
        (Settings, "all", set()),
        (ApiSettings, "api", set(Settings.model_fields)),
    ]
    for cls, used_by, skip in sources:
        notes: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            if (
                isinstance(klass, type)
                and issubclass(klass, BaseSettings)
                and klass not in (BaseSettings,)
            ):
                notes.update(_comments(klass))
        for name in cls.model_fields:
            if name in skip:
                continue
            meaning = notes.get(name) or ""
            rows.append(
                f"| {_env_names(cls, name)} | {_default(cls, name)} | {used_by} | {meaning} |"
            )
    return "\n".join(rows) + "\n"


def updated_readme(text: str) -> str:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table()}{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="update README.md in place")
    args = parser.parse_args()
    if args.write:
        README.write_text(updated_readme(README.read_text()))
    else:
        sys.stdout.write(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
