"""The "homecheff" scenario: a Prisma migration meant for a local database wipes production's users.

HomeCheff is a small Next.js + Prisma marketplace for home-cooked meals in the Netherlands. Its Neon
project ``homecheff-prod`` is about nine days old: an init migration (with the two founders' admin accounts
and the pilot's users), a week of ordinary traffic (sign-ups, sessions, listings, orders, reviews) and a
second migration. About 30 minutes before ``now`` a developer whose shell pointed at production ran a
migration written for a local database: it recreated ``User`` keeping only the 2 ADMIN rows, and its
``DROP TABLE "User" CASCADE`` took the foreign keys of Session, Listing, Order and Review with it. A few
legitimate writes follow (an admin edit, a customer signing up again, a test order), which a restore to
"just before the incident" loses.

Everything is derived from ``now`` and fixed seeds (no wall clock), so ``build(now)`` is deterministic. The
*shape* of the history (the sequence of sign-ups, listings, order rounds and migrations) is fixed and only
the times move with ``now``, so the invariants the demo and tests rely on (11 users after the init, 18
right before the incident, the canary) hold for every ``now``; details such as which orders are already
picked up when the cooks update them follow from the times.
"""

from __future__ import annotations

import calendar
import hashlib
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeAlias

from recovery_wizard.sandbox.scenarios import BackupScheduleSpec, BranchSpec, Change, Scenario, SnapshotSpec

NAME = "homecheff"
PROJECT_NAME = "homecheff-prod"
CANARY = 'SELECT count(*) >= 10 FROM "User"'
RETENTION_SECONDS = 7 * 24 * 3600  # Neon's Launch plan
# Two generators: one for what happens, one for when. Keeping them apart means drawing the times (whose
# number of draws depends on `now`) never shifts who signs up or what gets ordered.
CONTENT_SEED = 20260301
TIMES_SEED = 20260302

# ---------------------------------------------------------------------------------------------------------
# SQL helpers. Every value is written as a literal (the scenario is plain SQL text replayed by the
# sandbox), so quoting lives here and nowhere else.


@dataclass(frozen=True)
class _Raw:
    """A SQL expression written as is (a cast, an ARRAY[...] built by the helpers below)."""

    sql: str


SqlValue: TypeAlias = str | int | bool | datetime | list[str] | _Raw | None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text(value: str) -> str:
    # standard_conforming_strings is on (the default since PostgreSQL 9.1), so doubling the single quote
    # is the only escaping a literal needs; a NUL byte cannot be stored in TEXT at all.
    if "\x00" in value:
        raise ValueError("A SQL text literal cannot hold a NUL character.")
    return "'" + value.replace("'", "''") + "'"


def _utc_text(at: datetime) -> str:
    """``at`` as naive UTC text with milliseconds: what Prisma stores in a ``TIMESTAMP(3)`` column."""
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%d %H:%M:%S.") + f"{at.microsecond // 1000:03d}"


def _timestamptz(at: datetime) -> _Raw:
    """A literal for a ``TIMESTAMPTZ`` column (``_prisma_migrations``), full precision, explicitly UTC."""
    return _Raw(_text(at.astimezone(UTC).isoformat(sep=" ")))


def _literal(value: SqlValue) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, _Raw):
        return value.sql
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return _text(_utc_text(value))
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(_text(item) for item in value) + "]::TEXT[]"
    return _text(value)


def _insert(table: str, rows: Sequence[Mapping[str, SqlValue]]) -> str:
    columns = list(rows[0])
    values = ",\n".join("    (" + ", ".join(_literal(row[c]) for c in columns) + ")" for row in rows)
    return f"INSERT INTO {_ident(table)} ({', '.join(map(_ident, columns))}) VALUES\n{values};"


def _update(table: str, row_id: str, values: Mapping[str, SqlValue]) -> str:
    assignments = ", ".join(f"{_ident(column)} = {_literal(value)}" for column, value in values.items())
    return f"UPDATE {_ident(table)} SET {assignments} WHERE {_ident('id')} = {_text(row_id)};"


def _euros(cents: int) -> str:
    return f"€{cents // 100}.{cents % 100:02d}"


# ---------------------------------------------------------------------------------------------------------
# Time: traffic follows the day in Europe/Amsterdam. The EU summer-time rule is computed here rather than
# read from zoneinfo, because Windows has no tz database without the tzdata package and the scenario must
# come out identical on every machine.

_HOUR_WEIGHT = (
    # 00    01    02    03    04    05    06    07    08    09    10    11
    0.04, 0.02, 0.01, 0.01, 0.01, 0.02, 0.05, 0.15, 0.30, 0.45, 0.55, 0.70,
    # 12    13    14    15    16    17    18    19    20    21    22    23
    0.90, 0.80, 0.55, 0.50, 0.65, 0.95, 1.00, 0.85, 0.70, 0.50, 0.30, 0.10,
)  # fmt: skip


def _last_sunday(year: int, month: int) -> date:
    last = date(year, month, calendar.monthrange(year, month)[1])
    return last - timedelta(days=(last.weekday() - calendar.SUNDAY) % 7)


def _amsterdam_offset(at: datetime) -> timedelta:
    """UTC+2 between 01:00 UTC on the last Sundays of March and October, else UTC+1."""
    at = at.astimezone(UTC)
    summer_starts = datetime.combine(_last_sunday(at.year, 3), time(1), UTC)
    summer_ends = datetime.combine(_last_sunday(at.year, 10), time(1), UTC)
    return timedelta(hours=2) if summer_starts <= at < summer_ends else timedelta(hours=1)


def _amsterdam(at: datetime) -> datetime:
    """Amsterdam wall-clock time of ``at``, as a naive datetime."""
    return (at.astimezone(UTC) + _amsterdam_offset(at)).replace(tzinfo=None)


def _from_amsterdam(day: date, wall: time) -> datetime:
    """The UTC moment of ``wall`` o'clock on ``day`` in Amsterdam (never used between 2 and 3 am)."""
    naive = datetime.combine(day, wall, UTC)
    return naive - _amsterdam_offset(naive - timedelta(hours=1))


def _ms(at: datetime) -> datetime:
    # Rows are stored as TIMESTAMP(3); keeping change times on whole milliseconds makes a row's createdAt
    # equal its change's time exactly, not rounded.
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _traffic_times(rng: random.Random, start: datetime, end: datetime, count: int) -> list[datetime]:
    """``count`` moments in (start, end), denser in Amsterdam's daytime, at least 4 minutes apart."""
    picked: list[datetime] = []
    span = (end - start).total_seconds()
    for _ in range(100_000):
        if len(picked) == count:
            return sorted(picked)
        candidate = _ms(start + timedelta(seconds=rng.uniform(0, span)))
        if rng.random() >= _HOUR_WEIGHT[_amsterdam(candidate).hour]:
            continue
        if candidate <= start or any(abs(candidate - p) < timedelta(minutes=4) for p in picked):
            continue
        picked.append(candidate)
    raise RuntimeError(f"Could not place {count} changes between {start} and {end}.")


# ---------------------------------------------------------------------------------------------------------
# The cast.


@dataclass(frozen=True)
class _Persona:
    name: str
    email: str
    city: str


FOUNDERS = (
    _Persona("Sari Wijaya", "sari@homecheff.nl", "Utrecht"),
    _Persona("Daan de Vries", "daan@homecheff.nl", "Utrecht"),
)
# Imported from the pilot (a shared spreadsheet and a Typeform) by the init migration's seed step.
PILOT_USERS = (
    _Persona("Ratna Kusuma", "ratna.kusuma@gmail.com", "Utrecht"),
    _Persona("Joost Bakker", "joost.bakker@ziggo.nl", "Amersfoort"),
    _Persona("Dewi Hartono", "dewi.hartono@gmail.com", "Utrecht"),
    _Persona("Fleur Jansen", "fleurjansen@hotmail.com", "Utrecht"),
    _Persona("Bram Visser", "bram.visser@outlook.com", "Zeist"),
    _Persona("Putri Santoso", "putri.santoso@gmail.com", "Amersfoort"),
    _Persona("Lotte Mulder", "lotte.mulder@gmail.com", "Utrecht"),
    _Persona("Ruben Smit", "r.smit@kpnmail.nl", "Nieuwegein"),
    _Persona("Anouk van Dijk", "anouk.vandijk@gmail.com", "Houten"),
)
SIGNUPS = (
    _Persona("Thijs Meijer", "thijs.meijer@gmail.com", "Utrecht"),
    _Persona("Nadia Siregar", "nadia.siregar@outlook.com", "Utrecht"),
    _Persona("Emma de Boer", "emmadeboer@hotmail.com", "Zeist"),
    _Persona("Agus Prasetyo", "agus.prasetyo@gmail.com", "Nieuwegein"),
    _Persona("Kevin Tan", "kevin.tan@protonmail.com", "Utrecht"),
    _Persona("Sanne 't Hart", "sanne.thart@gmail.com", "Houten"),
    _Persona("Maartje Bos", "maartje.bos@ziggo.nl", "Utrecht"),
)
# The customer who signs up again after the incident, not knowing her account was deleted.
RESIGNUP = "Lotte Mulder"


@dataclass(frozen=True)
class _Dish:
    cook: str
    title: str
    description: str
    price_cents: int
    allergens: tuple[str, ...]


DISHES = (
    _Dish("Dewi Hartono", "Rendang sapi", "Slow-cooked beef rendang from my mother's Padang recipe, with "
          "nasi putih. One generous portion.", 950, ("coconut",)),
    _Dish("Joost Bakker", "Stamppot boerenkool met rookworst", "Kale stamppot with a smoked sausage and "
          "plenty of gravy, like oma made it.", 850, ("celery", "mustard")),
    _Dish("Ratna Kusuma", "Lemper ayam (6 pcs)", "Sticky rice rolls filled with spiced shredded chicken, "
          "wrapped in banana leaf.", 700, ("coconut",)),
    _Dish("Putri Santoso", "Spekkoek (half loaf)", "Indonesian thousand-layer cake with speculaas spices. "
          "Baked on Sunday morning.", 1450, ("gluten", "egg", "milk")),
    _Dish("Anouk van Dijk", "Oma's appeltaart", "Dutch apple pie with cinnamon and raisins, serves 8. "
          "Whipped cream on request.", 1800, ("gluten", "egg", "milk")),
    _Dish("Nadia Siregar", "Ayam pedis", "Fiery Manado-style chicken with rice and sambal roa. Not for the "
          "faint-hearted!", 900, ()),
    _Dish("Agus Prasetyo", "Sate ayam (10 skewers)", "Chicken satay with peanut sauce, lontong and "
          "crispy shallots.", 1100, ("peanut", "soy")),
    _Dish("Joost Bakker", "Erwtensoep (1 litre)", "Thick Dutch pea soup with rookworst and rye bread.",
          750, ("celery", "gluten")),
    _Dish("Ratna Kusuma", "Gado-gado", "Blanched vegetables, tofu, tempeh and egg with peanut sauce.",
          800, ("peanut", "egg", "soy")),
)  # fmt: skip

ORDER_NOTES = (None, None, None, "Zonder pinda graag", "I'll pick up around 18:30", "Extra sambal please!")
REVIEWS = (
    "Echt zoals bij mijn oma in Bandung!",
    "Heerlijk, and a very generous portion.",
    "Lekker! A bit too spicy for the kids, we loved it.",
    "Perfect for our Sunday dinner, will order again.",
    "Ready on time and still warm. Top!",
)

# ---------------------------------------------------------------------------------------------------------
# The schema, as `prisma migrate dev` generated it (Prisma writes each foreign key on one long line).

PRISMA_MIGRATIONS_TABLE = """\
CREATE TABLE "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
);"""

INIT_MIGRATION = """\
-- CreateEnum
CREATE TYPE "Role" AS ENUM ('USER', 'ADMIN');

-- CreateEnum
CREATE TYPE "ListingStatus" AS ENUM ('DRAFT', 'ACTIVE', 'SOLD_OUT', 'ARCHIVED');

-- CreateEnum
CREATE TYPE "OrderStatus" AS ENUM ('PENDING', 'CONFIRMED', 'COMPLETED', 'CANCELLED');

-- CreateTable
CREATE TABLE "User" (
    "id" TEXT NOT NULL,
    "email" TEXT NOT NULL,
    "name" TEXT,
    "emailVerified" TIMESTAMP(3),
    "image" TEXT,
    "role" "Role" NOT NULL DEFAULT 'USER',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "User_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Session" (
    "id" TEXT NOT NULL,
    "sessionToken" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "expires" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Session_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Listing" (
    "id" TEXT NOT NULL,
    "title" TEXT NOT NULL,
    "description" TEXT NOT NULL,
    "priceCents" INTEGER NOT NULL,
    "city" TEXT NOT NULL,
    "status" "ListingStatus" NOT NULL DEFAULT 'DRAFT',
    "sellerId" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Listing_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Order" (
    "id" TEXT NOT NULL,
    "listingId" TEXT NOT NULL,
    "buyerId" TEXT NOT NULL,
    "quantity" INTEGER NOT NULL DEFAULT 1,
    "totalCents" INTEGER NOT NULL,
    "status" "OrderStatus" NOT NULL DEFAULT 'PENDING',
    "pickupAt" TIMESTAMP(3) NOT NULL,
    "note" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Order_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Review" (
    "id" TEXT NOT NULL,
    "orderId" TEXT NOT NULL,
    "authorId" TEXT NOT NULL,
    "rating" INTEGER NOT NULL,
    "comment" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Review_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "User_email_key" ON "User"("email");

-- CreateIndex
CREATE UNIQUE INDEX "Session_sessionToken_key" ON "Session"("sessionToken");

-- CreateIndex
CREATE INDEX "Listing_sellerId_idx" ON "Listing"("sellerId");

-- CreateIndex
CREATE INDEX "Order_buyerId_idx" ON "Order"("buyerId");

-- CreateIndex
CREATE INDEX "Order_listingId_idx" ON "Order"("listingId");

-- CreateIndex
CREATE UNIQUE INDEX "Review_orderId_key" ON "Review"("orderId");

-- AddForeignKey
ALTER TABLE "Session" ADD CONSTRAINT "Session_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Listing" ADD CONSTRAINT "Listing_sellerId_fkey" FOREIGN KEY ("sellerId") REFERENCES "User"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Order" ADD CONSTRAINT "Order_listingId_fkey" FOREIGN KEY ("listingId") REFERENCES "Listing"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Order" ADD CONSTRAINT "Order_buyerId_fkey" FOREIGN KEY ("buyerId") REFERENCES "User"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Review" ADD CONSTRAINT "Review_orderId_fkey" FOREIGN KEY ("orderId") REFERENCES "Order"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Review" ADD CONSTRAINT "Review_authorId_fkey" FOREIGN KEY ("authorId") REFERENCES "User"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
"""

ALLERGENS_MIGRATION = """\
-- AlterTable
ALTER TABLE "Listing" ADD COLUMN     "allergens" TEXT[] DEFAULT ARRAY[]::TEXT[];

-- CreateIndex
CREATE INDEX "Listing_status_createdAt_idx" ON "Listing"("status", "createdAt");
"""

# Hand-written for a local database: "add a locale and clear out my seeded test customers, keep the
# admin logins". Run with production's DATABASE_URL in the shell, it deleted every customer and cook, and
# the CASCADE silently dropped every foreign key pointing at User. The app keeps working (the new column
# has a default), which is why nobody noticed for half an hour.
INCIDENT_MIGRATION = """\
-- RedefineTable
CREATE TABLE "User_new" (
    "id" TEXT NOT NULL,
    "email" TEXT NOT NULL,
    "name" TEXT,
    "emailVerified" TIMESTAMP(3),
    "image" TEXT,
    "role" "Role" NOT NULL DEFAULT 'USER',
    "locale" TEXT NOT NULL DEFAULT 'nl',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "User_new_pkey" PRIMARY KEY ("id")
);

-- Keep the admin logins; the seeded test customers go.
INSERT INTO "User_new" ("id", "email", "name", "emailVerified", "image", "role", "createdAt", "updatedAt")
SELECT "id", "email", "name", "emailVerified", "image", "role", "createdAt", "updatedAt"
FROM "User" WHERE "role" = 'ADMIN';

DROP TABLE "User" CASCADE;
ALTER TABLE "User_new" RENAME TO "User";
ALTER TABLE "User" RENAME CONSTRAINT "User_new_pkey" TO "User_pkey";

-- CreateIndex
CREATE UNIQUE INDEX "User_email_key" ON "User"("email");
"""

# ---------------------------------------------------------------------------------------------------------
# The simulation: app-level state, so every change is valid against what came before it.


@dataclass
class _User:
    id: str
    name: str
    email: str
    city: str
    role: str


@dataclass
class _Listing:
    id: str
    dish: _Dish
    seller: _User
    price_cents: int
    status: str


@dataclass
class _Order:
    id: str
    listing: _Listing
    buyer: _User
    quantity: int
    status: str
    pickup_at: datetime
    reviewed: bool = False


_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(number: int, width: int) -> str:
    digits = ""
    while number:
        number, digit = divmod(number, 36)
        digits = _BASE36[digit] + digits
    return digits.rjust(width, "0")[-width:]


class _History:
    """Builds the changes one at a time, keeping the app's state so each one makes sense."""

    def __init__(self) -> None:
        self.rng = random.Random(CONTENT_SEED)
        self.counter = self.rng.randrange(36**4)
        self.fingerprint = _base36(self.rng.randrange(36**4), 4)
        self.users: list[_User] = []
        self.listings: list[_Listing] = []
        self.orders: list[_Order] = []
        self.signups = list(SIGNUPS)
        self.dishes = list(DISHES)
        self.has_allergens = False
        self.changes: list[Change] = []

    # -- ids and rows

    def cuid(self, at: datetime) -> str:
        """A cuid v1 as Prisma's ``@default(cuid())`` makes: c + time + counter + fingerprint + random."""
        self.counter = (self.counter + 1) % 36**4
        millis = int(at.timestamp() * 1000)
        return (
            "c"
            + _base36(millis, 8)
            + _base36(self.counter, 4)
            + self.fingerprint
            + _base36(self.rng.getrandbits(42), 8)
        )

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def user(self, persona: _Persona, at: datetime, role: str = "USER") -> tuple[_User, dict[str, SqlValue]]:
        user = _User(self.cuid(at), persona.name, persona.email, persona.city, role)
        row: dict[str, SqlValue] = {
            "id": user.id,
            "email": user.email,
            "name": user.name,
            "emailVerified": at,  # next-auth's magic link verifies on the first sign-in
            "image": None,
            "role": role,
            "createdAt": at,
            "updatedAt": at,
        }
        return user, row

    def session(self, user: _User, at: datetime) -> dict[str, SqlValue]:
        return {
            "id": self.cuid(at),
            "sessionToken": self.uuid(),
            "userId": user.id,
            "expires": at + timedelta(days=30),
        }

    def migration_row(self, name: str, sql: str, at: datetime) -> str:
        # Prisma records a checksum of the migration file and when it started and finished applying.
        took = timedelta(milliseconds=self.rng.randint(40, 900))
        return _insert(
            "_prisma_migrations",
            [
                {
                    "id": self.uuid(),
                    "checksum": hashlib.sha256(sql.encode()).hexdigest(),
                    "finished_at": _timestamptz(at),
                    "migration_name": name,
                    "logs": None,
                    "rolled_back_at": None,
                    "started_at": _timestamptz(at - took),
                    "applied_steps_count": 1,
                }
            ],
        )

    def add(self, at: datetime, statements: Sequence[str], summary: str, kind: str = "write") -> None:
        self.changes.append(Change(at=at, sql="\n\n".join(statements) + "\n", summary=summary, kind=kind))

    def customers(self) -> list[_User]:
        return [u for u in self.users if u.role == "USER"]

    def find(self, name: str) -> _User:
        return next(u for u in self.users if u.name == name)

    def active(self) -> list[_Listing]:
        return [listing for listing in self.listings if listing.status == "ACTIVE"]

    # -- migrations

    def init(self, at: datetime) -> None:
        name = _migration_name(at - timedelta(days=1, hours=3, minutes=12, seconds=44), "init")
        statements = [
            PRISMA_MIGRATIONS_TABLE,
            INIT_MIGRATION.rstrip(),
            self.migration_row(name, INIT_MIGRATION, at),
        ]
        rows = []
        for persona in FOUNDERS:
            user, row = self.user(persona, at, role="ADMIN")
            self.users.append(user)
            rows.append(row)
        for persona in PILOT_USERS:
            user, row = self.user(persona, at)
            self.users.append(user)
            rows.append(row)
        # The pilot's users come in with the schema, so the canary (>= 10 users) is true from the very first
        # snapshot: every moment of the restore window is a healthy state to restore to.
        statements.append("-- Seed: the founders and the pilot's users\n" + _insert("User", rows))
        summary = (
            f"Migration {name} created the schema (User, Session, Listing, Order, Review); "
            f"the 2 founders (admins) and {len(PILOT_USERS)} pilot users were imported"
        )
        self.add(at, statements, summary, kind="migration")

    def allergens_migration(self, at: datetime) -> None:
        name = _migration_name(at - timedelta(hours=19, minutes=3, seconds=5), "listing_allergens")
        statements = [ALLERGENS_MIGRATION.rstrip(), self.migration_row(name, ALLERGENS_MIGRATION, at)]
        self.add(at, statements, f"Migration {name} added an allergens column to Listing", kind="migration")
        self.has_allergens = True

    def incident(self, at: datetime) -> str:
        name = _migration_name(at - timedelta(hours=2, minutes=47, seconds=31), "user_locale_reset")
        lost = len(self.customers())
        statements = [INCIDENT_MIGRATION.rstrip(), self.migration_row(name, INCIDENT_MIGRATION, at)]
        summary = (
            f"Migration {name}, meant for a developer's local database, ran against production: it "
            f"recreated the User table keeping only the 2 ADMIN rows ({lost} users deleted), and its "
            "DROP TABLE … CASCADE removed the foreign keys from Session, Listing, Order and Review to User"
        )
        self.add(at, statements, summary, kind="incident")
        self.users = [u for u in self.users if u.role == "ADMIN"]
        return name

    # -- ordinary traffic; each returns False when there is nothing sensible to do (the caller falls back)

    def signup(self, at: datetime) -> bool:
        user, row = self.user(self.signups.pop(0), at)
        self.users.append(user)
        self.add(
            at,
            [_insert("User", [row]), _insert("Session", [self.session(user, at)])],
            f"{user.name} signed up",
        )
        return True

    def login(self, at: datetime) -> bool:
        who = self.rng.sample(self.users, self.rng.choice((1, 1, 2, 3)))
        rows = [self.session(user, at) for user in who]
        names = [user.name for user in who]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        self.add(at, [_insert("Session", rows)], f"{listed} signed in")
        return True

    def listing(self, at: datetime) -> bool:
        names = {u.name for u in self.users}
        dish = next((d for d in self.dishes if d.cook in names), None)
        if dish is None:
            return False
        self.dishes.remove(dish)
        seller = self.find(dish.cook)
        listing = _Listing(self.cuid(at), dish, seller, dish.price_cents, "ACTIVE")
        row: dict[str, SqlValue] = {
            "id": listing.id,
            "title": dish.title,
            "description": dish.description,
            "priceCents": dish.price_cents,
            "city": seller.city,
            "status": "ACTIVE",
            "sellerId": seller.id,
            "createdAt": at,
            "updatedAt": at,
        }
        if self.has_allergens:
            row["allergens"] = list(dish.allergens)
        self.listings.append(listing)
        self.add(
            at,
            [_insert("Listing", [row])],
            f'{seller.name} listed "{dish.title}" at {_euros(dish.price_cents)}',
        )
        return True

    def place_orders(self, at: datetime) -> bool:
        if not self.active():
            return False
        rows: list[dict[str, SqlValue]] = []
        portions: dict[str, int] = {}  # dish title -> portions ordered in this round
        for _ in range(self.rng.choice((1, 1, 2, 2, 3))):
            listing = self.rng.choice(self.active())
            buyer = self.rng.choice([u for u in self.customers() if u is not listing.seller])
            order = self.order(listing, buyer, self.rng.choice((1, 1, 1, 2, 2, 3, 4)), at)
            rows.append(self.order_row(order, at, self.rng.choice(ORDER_NOTES)))
            portions[listing.dish.title] = portions.get(listing.dish.title, 0) + order.quantity
        count = "1 order" if len(rows) == 1 else f"{len(rows)} orders"
        detail = ", ".join(f"{n}× {title}" for title, n in portions.items())
        self.add(at, [_insert("Order", rows)], f"{count} placed ({detail})")
        return True

    def order(self, listing: _Listing, buyer: _User, quantity: int, at: datetime) -> _Order:
        # Pick-up is at dinner time: today if ordered before 16:00 in Amsterdam, else tomorrow.
        local = _amsterdam(at)
        day = local.date() + timedelta(days=0 if local.hour < 16 else 1)
        pickup = _from_amsterdam(
            day,
            time(17, self.rng.choice((30, 45)))
            if self.rng.random() < 0.3
            else time(18, self.rng.choice((0, 15, 30))),
        )
        order = _Order(self.cuid(at), listing, buyer, quantity, "PENDING", pickup)
        self.orders.append(order)
        return order

    @staticmethod
    def order_row(order: _Order, at: datetime, note: str | None) -> dict[str, SqlValue]:
        return {
            "id": order.id,
            "listingId": order.listing.id,
            "buyerId": order.buyer.id,
            "quantity": order.quantity,
            "totalCents": order.quantity * order.listing.price_cents,
            "status": order.status,
            "pickupAt": order.pickup_at,
            "note": note,
            "createdAt": at,
            "updatedAt": at,
        }

    def progress_orders(self, at: datetime) -> bool:
        """Cooks confirm new orders, mark picked-up ones completed, and now and then one is cancelled."""
        statements: list[str] = []
        counts: dict[str, int] = {}
        for order in self.orders:
            if order.status not in ("PENDING", "CONFIRMED"):
                continue
            cancelled = self.rng.random() < 0.08
            if order.status == "PENDING" and cancelled:
                order.status = "CANCELLED"
            elif order.pickup_at <= at:
                order.status = "COMPLETED"
            elif order.status == "PENDING":
                order.status = "CONFIRMED"
            else:
                continue
            statements.append(_update("Order", order.id, {"status": order.status, "updatedAt": at}))
            counts[order.status] = counts.get(order.status, 0) + 1
        if not statements:
            return False
        detail = ", ".join(f"{n} {status.lower()}" for status, n in sorted(counts.items()))
        total = sum(counts.values())
        self.add(at, statements, f"Cooks updated {total} order{'s' if total > 1 else ''}: {detail}")
        return True

    def review(self, at: datetime) -> bool:
        done = [
            o for o in self.orders if o.status == "COMPLETED" and not o.reviewed and o.buyer in self.users
        ]
        if not done:
            return False
        order = self.rng.choice(done)
        order.reviewed = True
        rating = self.rng.choice((4, 5, 5, 5))
        row: dict[str, SqlValue] = {
            "id": self.cuid(at),
            "orderId": order.id,
            "authorId": order.buyer.id,
            "rating": rating,
            "comment": self.rng.choice(REVIEWS),
            "createdAt": at,
        }
        self.add(
            at,
            [_insert("Review", [row])],
            f'{order.buyer.name} gave "{order.listing.dish.title}" {rating} stars',
        )
        return True

    def edit_price(self, at: datetime) -> bool:
        if not self.active():
            return False
        listing = self.rng.choice(self.active())
        old = listing.price_cents
        listing.price_cents += self.rng.choice((50, 50, 100, -50))
        self.add(
            at,
            [_update("Listing", listing.id, {"priceCents": listing.price_cents, "updatedAt": at})],
            f'{listing.seller.name} changed the price of "{listing.dish.title}" from {_euros(old)} '
            f"to {_euros(listing.price_cents)}",
        )
        return True

    def sold_out(self, at: datetime) -> bool:
        if len(self.active()) < 3:
            return False
        listing = self.rng.choice(self.active())
        listing.status = "SOLD_OUT"
        self.add(
            at,
            [_update("Listing", listing.id, {"status": "SOLD_OUT", "updatedAt": at})],
            f'"{listing.dish.title}" by {listing.seller.name} sold out for this week',
        )
        return True

    def fill_allergens(self, at: datetime) -> bool:
        todo = [listing for listing in self.listings if listing.dish.allergens]
        if not self.has_allergens or not todo:
            return False
        statements = [
            _update("Listing", listing.id, {"allergens": list(listing.dish.allergens), "updatedAt": at})
            for listing in todo
        ]
        self.add(at, statements, f"Cooks filled in the new allergens field on {len(todo)} listings")
        return True


def _migration_name(created: datetime, slug: str) -> str:
    # `prisma migrate dev` names a migration after the UTC time it was generated on the developer's laptop.
    return created.astimezone(UTC).strftime("%Y%m%d%H%M%S") + "_" + slug


# What the app does between the migrations, in order (the times are drawn separately). Fixed, so the
# scenario has the same shape for every `now`: 11 users after the init, 18 before the incident.
_BEFORE_ALLERGENS = (
    "listing", "listing", "signup", "listing", "orders", "listing", "orders", "progress",
    "login", "review", "orders", "signup", "edit", "orders", "progress", "review",
)  # fmt: skip
_AFTER_ALLERGENS = (
    "allergens", "listing", "orders", "signup", "orders", "progress", "review", "listing",
    "signup", "orders", "edit", "login", "orders", "progress", "review", "signup",
    "listing", "orders", "soldout", "orders", "progress", "signup", "review", "orders",
    "edit", "signup", "orders", "progress",
)  # fmt: skip


def _traffic(history: _History, kinds: Sequence[str], times: Sequence[datetime]) -> None:
    actions = {
        "signup": history.signup,
        "login": history.login,
        "listing": history.listing,
        "orders": history.place_orders,
        "progress": history.progress_orders,
        "review": history.review,
        "edit": history.edit_price,
        "soldout": history.sold_out,
        "allergens": history.fill_allergens,
    }
    for kind, at in zip(kinds, times, strict=True):
        # An action with nothing to act on (no completed order to review yet) becomes a sign-in instead.
        if not actions[kind](at):
            history.login(at)


def build(now: datetime) -> Scenario:
    """The homecheff scenario with its history ending at ``now`` (tz-aware); deterministic for ``now``."""
    if now.utcoffset() is None:
        raise ValueError("The scenario needs a timezone-aware `now`.")
    now = now.astimezone(UTC)
    times = random.Random(TIMES_SEED)
    history = _History()

    # The founders deployed on an evening about nine days ago: older than the 7-day restore window.
    init_at = _ms(_from_amsterdam(_amsterdam(now - timedelta(days=9)).date(), time(21, 13, 52, 318000)))
    allergens_at = _ms(_from_amsterdam(_amsterdam(now - timedelta(days=5)).date(), time(10, 41, 7, 905000)))
    incident_at = now - timedelta(minutes=30, seconds=17.482)

    history.init(init_at)
    early = _traffic_times(
        times, init_at + timedelta(minutes=20), allergens_at - timedelta(minutes=20), len(_BEFORE_ALLERGENS)
    )
    _traffic(history, _BEFORE_ALLERGENS, early)
    history.allergens_migration(allergens_at)
    late = _traffic_times(
        times, allergens_at + timedelta(minutes=10), incident_at - timedelta(minutes=3), len(_AFTER_ALLERGENS)
    )
    _traffic(history, _AFTER_ALLERGENS, late)

    users_before = len(history.users)
    history.incident(incident_at)
    after = _after_incident(history, now)

    branches = (
        # Sari tried the allergens migration on a branch of her own first.
        BranchSpec("dev/sari-allergens", _ms(allergens_at - timedelta(hours=2, minutes=13, seconds=41.377))),
        BranchSpec(
            "preview/checkout-redesign",
            _ms(_from_amsterdam(_amsterdam(now - timedelta(days=3)).date(), time(14, 5, 12, 640000))),
        ),
    )
    # Daan took a manual snapshot the evening before the incident (before a planned release), and the
    # project keeps a nightly backup for a week.
    day_before = _amsterdam(incident_at).date() - timedelta(days=1)
    snapshots = (SnapshotSpec("before release", _ms(_from_amsterdam(day_before, time(18, 2, 41, 506000)))),)
    schedule = (BackupScheduleSpec("daily", hour=2, retention_seconds=7 * 24 * 3600),)
    description = (
        f"{PROJECT_NAME} is the production database of HomeCheff, a small Next.js + Prisma marketplace "
        "for home-cooked meals. About 30 minutes ago a migration meant for a developer's local database "
        f"ran against production: it recreated the User table and kept only the 2 admin accounts, so "
        f"{users_before - 2} cooks and customers can no longer sign in and their listings and orders point "
        f"at nobody. Restore the data as it was just before the incident ({len(after)} small writes made "
        "since then will need redoing)."
    )
    return Scenario(
        name=NAME,
        project_name=PROJECT_NAME,
        description=description,
        database="neondb",
        role="neondb_owner",
        history_retention_seconds=RETENTION_SECONDS,
        incident_at=incident_at,
        canary=CANARY,
        changes=tuple(history.changes),
        branches=branches,
        after_incident=after,
        snapshots=snapshots,
        backup_schedule=schedule,
    )


def _after_incident(history: _History, now: datetime) -> tuple[str, ...]:
    """Legitimate writes after the incident, valid against the damaged schema; a restore loses them."""
    start = len(history.changes)
    sari, daan = (history.find(f.name) for f in FOUNDERS)

    at = _ms(now - timedelta(minutes=22, seconds=4.213))
    rendang = next(listing for listing in history.listings if listing.dish.title == "Rendang sapi")
    fixed = rendang.dish.description.replace("nasi putih", "nasi putih and sambal ijo")
    history.add(
        at,
        [_update("Listing", rendang.id, {"description": fixed, "updatedAt": at})],
        f'{sari.name} (admin) edited the description of "{rendang.dish.title}"',
    )

    at = _ms(now - timedelta(minutes=14, seconds=39.061))
    persona = next(p for p in PILOT_USERS if p.name == RESIGNUP)
    user, row = history.user(persona, at)
    history.users.append(user)
    history.add(
        at,
        [_insert("User", [row]), _insert("Session", [history.session(user, at)])],
        f"{user.name} signed up again after her account stopped working",
    )

    at = _ms(now - timedelta(minutes=9, seconds=12.777))
    newest = history.active()[-1]  # the dish the checkout redesign was built around
    order = history.order(newest, daan, 1, at)
    history.add(
        at,
        [_insert("Order", [history.order_row(order, at, "Test order for the new checkout")])],
        f'{daan.name} (admin) placed a test order: 1× "{newest.dish.title}"',
    )
    return tuple(change.summary for change in history.changes[start:])
