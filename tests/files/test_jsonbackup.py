"""JSON backups of the cron kind: camelCase plurals, nested relations, @map, conversions, one transaction."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from recovery_wizard.recovery.files import detect
from recovery_wizard.recovery.files.jsonbackup import JsonBackupError, singular
from recovery_wizard.recovery.files.load import load
from recovery_wizard.recovery.files.prismamodels import parse_models
from tests.files.conftest import Scratch

SCHEMA = """
CREATE TYPE "Role" AS ENUM ('USER', 'ADMIN');
CREATE TABLE users (id text PRIMARY KEY, email text UNIQUE NOT NULL, full_name text,
  role "Role" NOT NULL DEFAULT 'USER', roles "Role"[], tags text[], created_at timestamp(3) NOT NULL DEFAULT now());
CREATE TABLE "Profile" (id serial PRIMARY KEY, bio text, meta jsonb, user_id text UNIQUE NOT NULL REFERENCES users(id));
CREATE TABLE "UserMembership" (id int PRIMARY KEY, "userId" text NOT NULL REFERENCES users(id),
  amount numeric(10,2) NOT NULL, "joinedAt" timestamptz);
CREATE TABLE "Audit" (id int PRIMARY KEY);
"""

PRISMA = """
// the app's schema
datasource db {
  provider = "postgresql"
  url      = env("DATABASE_URL")
}
enum Role { USER ADMIN }
model User {
  id          String           @id
  email       String           @unique
  fullName    String?          @map("full_name")
  role        Role             @default(USER)
  roles       Role[]
  tags        String[]
  createdAt   DateTime         @default(now()) @map("created_at")
  profile     Profile?
  memberships UserMembership[]
  @@map("users")
}
model Profile {
  id     Int     @id @default(autoincrement())
  bio    String?
  meta   Json?
  userId String  @unique @map("user_id")
  user   User    @relation(fields: [userId], references: [id])
}
model UserMembership {
  id       Int       @id
  userId   String
  user     User      @relation(fields: [userId], references: [id])
  amount   Decimal
  joinedAt DateTime?
}
model Audit {
  id Int @id
}
"""


def _backup(tmp_path: Path, **changes: Any) -> Path:
    body: dict[str, Any] = {
        "success": True,
        "timestamp": "2026-11-30T22:00:00.000Z",
        "stats": {"users": 2, "userMemberships": 3},
        "data": {
            "users": [
                {
                    "id": "u1",
                    "email": "ann@example.test",
                    "fullName": "Ann",
                    "role": "ADMIN",
                    "roles": ["ADMIN", "USER"],
                    "tags": ["cook"],
                    "createdAt": "2026-11-01T10:00:00.000+01:00",
                    "profile": {"id": 1, "bio": "hi", "meta": {"diet": ["vegan"]}},
                    "legacyField": 1,
                },
                {
                    "id": "u2",
                    "email": "bo@example.test",
                    "fullName": None,
                    "role": "USER",
                    "roles": [],
                    "tags": [],
                    "createdAt": "2026-11-02T10:00:00Z",
                    "profile": None,
                },
            ],
            "userMemberships": [
                {"id": 1, "userId": "u1", "amount": "12.50", "joinedAt": "2026-11-03T08:00:00+01:00"},
                {"id": 2, "userId": "u2", "amount": 3, "joinedAt": None},
            ],
        },
    }
    body.update(changes)
    path = tmp_path / "backup-2026-11-30.json"
    path.write_text(json.dumps(body))
    return path


@pytest.fixture
def prisma(tmp_path: Path) -> Path:
    path = tmp_path / "schema.prisma"
    path.write_text(PRISMA)
    return path


@pytest.mark.parametrize("with_prisma", [True, False])
async def test_loads_with_relations_camel_case_and_map(
    scratch: Scratch, tmp_path: Path, prisma: Path, with_prisma: bool
) -> None:
    target = scratch.create(SCHEMA + "INSERT INTO users (id, email) VALUES ('old', 'old@example.test');")
    path = _backup(tmp_path)
    result = await load(
        path, detect.detect(path), scratch.url(target), prisma_schema=prisma if with_prisma else None
    )
    users = scratch.query(
        target, "SELECT id, full_name, role::text, roles::text[], tags, created_at FROM users ORDER BY id"
    )
    assert users == [
        ("u1", "Ann", "ADMIN", ["ADMIN", "USER"], ["cook"], datetime(2026, 11, 1, 9, 0)),  # +01:00 applied
        ("u2", None, "USER", [], [], datetime(2026, 11, 2, 10, 0)),
    ]  # replace: the row the file lacks ("old") is gone
    assert scratch.query(target, 'SELECT bio, meta, user_id FROM "Profile"') == [
        ("hi", {"diet": ["vegan"]}, "u1")
    ]
    assert scratch.query(target, 'SELECT id, amount FROM "UserMembership" ORDER BY id') == [
        (1, Decimal("12.50")),
        (2, Decimal("3.00")),
    ]
    assert result.tables == {"users": 2, "Profile": 1, "UserMembership": 2}
    assert result.unmapped_fields == ["users.legacyField"]
    assert result.missing_tables == ["Audit"]
    assert result.partial == ["userMemberships: 2 rows in the file, stats says 3"]


async def test_upsert_keeps_rows_the_file_lacks(scratch: Scratch, tmp_path: Path, prisma: Path) -> None:
    target = scratch.create(
        SCHEMA + "INSERT INTO users (id, email, full_name) VALUES ('old', 'old@example.test', 'Old'), "
        "('u1', 'ann@example.test', 'Stale');"
    )
    path = _backup(tmp_path)
    await load(path, detect.detect(path), scratch.url(target), prisma_schema=prisma, json_mode="upsert")
    assert scratch.query(target, "SELECT id, full_name FROM users ORDER BY id") == [
        ("old", "Old"),
        ("u1", "Ann"),
        ("u2", None),
    ]


async def test_unknown_table_is_refused_before_any_write(scratch: Scratch, tmp_path: Path) -> None:
    target = scratch.create(SCHEMA + "INSERT INTO users (id, email) VALUES ('keep', 'k@example.test');")
    data = json.loads(_backup(tmp_path).read_text())["data"]
    path = _backup(tmp_path, data={**data, "wallets": [{"id": 1}]})
    with pytest.raises(JsonBackupError, match=r"holds 'wallets', which match no table") as caught:
        await load(path, detect.detect(path), scratch.url(target))
    assert "--prisma-schema" in caught.value.hint
    assert scratch.query(target, "SELECT id FROM users") == [("keep",)]


async def test_constraint_violation_names_table_and_key_and_loads_nothing(
    scratch: Scratch, tmp_path: Path, prisma: Path
) -> None:
    target = scratch.create(SCHEMA + "INSERT INTO users (id, email) VALUES ('keep', 'k@example.test');")
    data = json.loads(_backup(tmp_path).read_text())["data"]
    data["userMemberships"].append({"id": 3, "userId": "ghost", "amount": 1})
    path = _backup(tmp_path, data=data)
    with pytest.raises(JsonBackupError) as caught:
        await load(path, detect.detect(path), scratch.url(target), prisma_schema=prisma)
    message = str(caught.value)
    assert "UserMembership" in message and "(userId)=(ghost)" in message and "Nothing was loaded" in message
    assert scratch.query(target, "SELECT id FROM users") == [("keep",)]


async def test_replace_that_would_empty_another_table_is_refused(scratch: Scratch, tmp_path: Path) -> None:
    target = scratch.create(SCHEMA + "CREATE TABLE notes (id int, user_id text REFERENCES users(id));")
    path = _backup(tmp_path)
    with pytest.raises(JsonBackupError, match=r"notes \(references users\)") as caught:
        await load(path, detect.detect(path), scratch.url(target), json_mode="replace")
    assert "upsert" in caught.value.hint


async def test_auto_replaces_complete_tables_upserts_partial_ones_and_lets_the_file_win_a_collision(
    scratch: Scratch, tmp_path: Path, prisma: Path
) -> None:
    # The branch as a copy of the damaged database: a row the complete users table lacks ("late"), a
    # membership the partial table lacks (9), and Ann signed up again: a NEW id with her backed-up email.
    target = scratch.create(
        SCHEMA + "INSERT INTO users (id, email, full_name) VALUES ('late', 'late@example.test', 'Late'), "
        "('new-ann-id', 'ann@example.test', 'Ann again'), ('u2', 'bo@example.test', 'Stale');"
        "INSERT INTO \"UserMembership\" (id, \"userId\", amount) VALUES (9, 'u2', 1), (2, 'u2', 99);"
        "INSERT INTO \"Profile\" (id, bio, user_id) VALUES (7, 'kept', 'u2');"
    )
    path = _backup(tmp_path)
    result = await load(path, detect.detect(path), scratch.url(target), prisma_schema=prisma)
    assert scratch.query(target, "SELECT id, email, full_name FROM users ORDER BY id") == [
        ("u1", "ann@example.test", "Ann"),
        ("u2", "bo@example.test", None),
    ], "complete: exactly the file's rows; the file's Ann won over the re-signup row"
    assert scratch.query(target, 'SELECT id, amount FROM "UserMembership" ORDER BY id') == [
        (1, Decimal("12.50")),
        (2, Decimal("3.00")),
        (9, Decimal("1.00")),
    ], "partial (stats says 3): upserted, the branch's other row kept"
    assert scratch.query(target, 'SELECT id, user_id FROM "Profile" ORDER BY id') == [
        (1, "u1"),
        (7, "u2"),
    ], "a table met only nested under users is partial: upserted, its other rows kept"
    assert "replaced users row new-… that held the same email" in result.notes
    assert "removed 1 users row(s) the file does not hold (it holds that table completely)" in result.notes
    assert not any("ann@example.test" in note for note in result.notes)
    assert result.notes[0] == "loaded with auto"


async def test_auto_names_the_table_that_blocks_replacing_a_complete_one(
    scratch: Scratch, tmp_path: Path, prisma: Path
) -> None:
    target = scratch.create(
        SCHEMA + "CREATE TABLE notes (id int PRIMARY KEY, user_id text REFERENCES users(id));"
        "INSERT INTO users (id, email) VALUES ('late', 'late@example.test');"
        "INSERT INTO notes VALUES (1, 'late');"
    )
    path = _backup(tmp_path)
    with pytest.raises(JsonBackupError, match=r"notes still references \(notes_user_id_fkey\)") as caught:
        await load(path, detect.detect(path), scratch.url(target), prisma_schema=prisma)
    assert "Nothing was loaded" in str(caught.value) and caught.value.hint
    assert scratch.query(target, "SELECT id FROM users") == [("late",)], "one transaction: nothing kept"


async def test_auto_names_the_table_that_keeps_a_colliding_row(
    scratch: Scratch, tmp_path: Path, prisma: Path
) -> None:
    target = scratch.create(
        SCHEMA + "CREATE TABLE notes (id int PRIMARY KEY, user_id text REFERENCES users(id));"
        "INSERT INTO users (id, email) VALUES ('new-ann-id', 'ann@example.test');"
        "INSERT INTO notes VALUES (1, 'new-ann-id');"
    )
    path = _backup(tmp_path)
    with pytest.raises(JsonBackupError, match=r"collides .* notes still references it") as caught:
        await load(path, detect.detect(path), scratch.url(target), prisma_schema=prisma)
    assert "ann@example.test" not in str(caught.value) and "notes" in caught.value.hint
    assert scratch.query(target, "SELECT id FROM users") == [("new-ann-id",)]


def test_prisma_models_and_names() -> None:
    models = parse_models(PRISMA)
    assert models["User"].table == "users" and models["User"].fields["fullName"].column == "full_name"
    assert models["Profile"].fields["user"].relation_fields == ["userId"]
    assert models["User"].fields["profile"].is_relation
    assert [
        singular(w) for w in ("users", "userMemberships", "categories", "addresses", "statuses", "news")
    ] == ["user", "userMembership", "category", "address", "status", "new"]
