"""Two scratch databases on the tests' PostgreSQL: the past (a source branch) and the live (damaged) one."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from recovery_wizard.redact import Secret
from recovery_wizard.sandbox.pgserver import PgServer


@dataclass
class Pair:
    server: PgServer
    past_db: str
    live_db: str

    @property
    def past(self) -> Secret:
        return Secret(self.server.dsn(self.past_db))

    @property
    def live(self) -> Secret:
        return Secret(self.server.dsn(self.live_db))

    def run(self, db: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.server.dsn(db), autocommit=True) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def past_sql(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        return self.run(self.past_db, sql, params)

    def live_sql(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        return self.run(self.live_db, sql, params)

    def branch(self) -> None:
        """Make live a copy of past, as a Neon branch would be (schema, data and sequences)."""
        with psycopg.connect(self.server.admin_dsn.reveal(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.live_db}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{self.live_db}" TEMPLATE "{self.past_db}"')


@pytest.fixture
def pair(pg_server: PgServer) -> Iterator[Pair]:
    prefix = f"rwmerge_{secrets.token_hex(3)}"
    p = Pair(pg_server, f"{prefix}_past", f"{prefix}_live")
    with psycopg.connect(pg_server.admin_dsn.reveal(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{p.past_db}"')
        admin.execute(f'CREATE DATABASE "{p.live_db}"')
    try:
        yield p
    finally:
        with psycopg.connect(pg_server.admin_dsn.reveal(), autocommit=True) as admin:
            for db in (p.past_db, p.live_db):
                admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


HOMECHEFF_LIKE = """
CREATE TABLE "User" (
    id serial PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name text NOT NULL,
    "passwordHash" text,
    role text NOT NULL DEFAULT 'CUSTOMER',
    legacy_flag boolean
);
CREATE TABLE profile (user_id int PRIMARY KEY REFERENCES "User"(id) ON DELETE CASCADE, bio text);
CREATE TABLE membership (
    user_id int NOT NULL REFERENCES "User"(id) ON DELETE CASCADE,
    club text NOT NULL,
    since date NOT NULL DEFAULT current_date,
    PRIMARY KEY (user_id, club)
);
CREATE TABLE invoice (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id int NOT NULL REFERENCES "User"(id) ON DELETE CASCADE,
    cents int NOT NULL
);
CREATE TABLE audit_log (at timestamptz NOT NULL DEFAULT now(), msg text);
INSERT INTO "User" (email, name, "passwordHash", role) VALUES
    ('founder1@homecheff.nl', 'Sanne', '$2b$10$adminhashadminhash1', 'ADMIN'),
    ('founder2@homecheff.nl', 'Joris', '$2b$10$adminhashadminhash2', 'ADMIN');
INSERT INTO "User" (email, name, "passwordHash")
    SELECT 'cust' || g || '@example.nl', 'Customer ' || g, '$2b$10$secretcustomerhash' || g
    FROM generate_series(1, 20) g;
INSERT INTO profile SELECT id, 'bio of ' || name FROM "User";
INSERT INTO membership (user_id, club) SELECT id, 'pasta' FROM "User" WHERE id % 2 = 0;
INSERT INTO membership (user_id, club) SELECT id, 'soup' FROM "User" WHERE id % 3 = 0;
INSERT INTO invoice (user_id, cents) SELECT id, id * 100 FROM "User" WHERE role = 'CUSTOMER';
INSERT INTO audit_log (msg) VALUES ('init');
"""

# The incident and what happened since: a migration drops every customer (and, by cascade, their rows) and a
# column; then two admins are created, customer 7 signs up again with the same email, an admin is renamed.
HOMECHEFF_HISTORY = """
DELETE FROM "User" WHERE role = 'CUSTOMER';
ALTER TABLE "User" DROP COLUMN legacy_flag;
ALTER TABLE "User" ADD COLUMN locale text NOT NULL DEFAULT 'nl';
INSERT INTO "User" (email, name, "passwordHash", role) VALUES
    ('ops1@homecheff.nl', 'Ops One', '$2b$10$newadmin1', 'ADMIN'),
    ('ops2@homecheff.nl', 'Ops Two', '$2b$10$newadmin2', 'ADMIN'),
    ('cust7@example.nl', 'Customer 7 again', '$2b$10$resignup', 'CUSTOMER');
INSERT INTO profile SELECT id, 'new bio' FROM "User" WHERE id > 22;
INSERT INTO invoice (user_id, cents) SELECT id, 4200 FROM "User" WHERE email = 'cust7@example.nl';
UPDATE "User" SET name = 'Sanne de Vries' WHERE email = 'founder1@homecheff.nl';
INSERT INTO audit_log (msg) VALUES ('since');
"""


@pytest.fixture
def homecheff(pair: Pair) -> Pair:
    pair.past_sql(HOMECHEFF_LIKE)
    pair.branch()
    pair.live_sql(HOMECHEFF_HISTORY)
    return pair
