"""The models of a Prisma schema: which table and columns each model and field is stored in, and its relations.

A small reader of ``model X { … }`` blocks, by hand because nothing in Python parses Prisma's schema language
(``recovery/prisma.py`` runs the Prisma CLI and finds the schema file; it does not read models). It knows
what mapping names needs: ``@@map("table")``, ``@map("column")``, the field's type (a model name makes it a
relation), list/optional markers, and ``@relation(fields: [...], references: [...])``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

# Block bodies hold no braces (attributes' arguments are parentheses and strings), so [^{}]* ends each one.
_BLOCK: Final = re.compile(r"^[ \t]*(model|enum|type|view)\s+(\w+)\s*\{([^{}]*)\}", re.MULTILINE)
_FIELD: Final = re.compile(r"^\s*(\w+)\s+(\w+)(\[\])?(\?)?(.*)$")
_MAP: Final = re.compile(r'@map\(\s*(?:name:\s*)?"([^"]+)"')
_TABLE_MAP: Final = re.compile(r'@@map\(\s*(?:name:\s*)?"([^"]+)"')
_SCHEMA: Final = re.compile(r'@@schema\(\s*"([^"]+)"')
_RELATION_FIELDS: Final = re.compile(r"fields:\s*\[([^\]]*)\]")
_RELATION_REFS: Final = re.compile(r"references:\s*\[([^\]]*)\]")


@dataclass
class PrismaField:
    name: str
    type: str
    column: str
    is_list: bool
    optional: bool
    relation_fields: list[str] = field(default_factory=list)  # this model's fields holding the foreign key
    relation_references: list[str] = field(default_factory=list)  # the other model's fields they point at
    is_relation: bool = False


@dataclass
class PrismaModel:
    name: str
    table: str
    schema: str | None
    fields: dict[str, PrismaField]

    def column_of(self, field_name: str) -> str | None:
        found = self.fields.get(field_name)
        return found.column if found and not found.is_relation else None


def _strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", text)


def parse_models(text: str) -> dict[str, PrismaModel]:
    text = _strip_comments(text)
    blocks = list(_BLOCK.finditer(text))
    model_names = {b.group(2) for b in blocks if b.group(1) in ("model", "view")}
    models: dict[str, PrismaModel] = {}
    for block in blocks:
        if block.group(1) not in ("model", "view"):
            continue
        name, body = block.group(2), block.group(3)
        table_map = _TABLE_MAP.search(body)
        schema = _SCHEMA.search(body)
        fields: dict[str, PrismaField] = {}
        for line in body.splitlines():
            if line.strip().startswith("@@"):
                continue
            match = _FIELD.match(line)
            if match is None:
                continue
            fname, ftype, is_list, optional, rest = match.groups()
            column = _MAP.search(rest)
            entry = PrismaField(
                fname, ftype, column.group(1) if column else fname, bool(is_list), bool(optional)
            )
            if ftype in model_names:
                entry.is_relation = True
                if (refs := _RELATION_FIELDS.search(rest)) is not None:
                    entry.relation_fields = [f.strip() for f in refs.group(1).split(",") if f.strip()]
                if (refs := _RELATION_REFS.search(rest)) is not None:
                    entry.relation_references = [f.strip() for f in refs.group(1).split(",") if f.strip()]
            fields[fname] = entry
        models[name] = PrismaModel(
            name, table_map.group(1) if table_map else name, schema.group(1) if schema else None, fields
        )
    return models


def read_models(schema_path: Path) -> dict[str, PrismaModel]:
    """Models of one schema file, or of every ``.prisma`` file in a folder (multi-file schemas)."""
    if schema_path.is_dir():
        text = "\n".join(p.read_text("utf-8") for p in sorted(schema_path.rglob("*.prisma")))
    else:
        text = schema_path.read_text("utf-8")
    return parse_models(text)
