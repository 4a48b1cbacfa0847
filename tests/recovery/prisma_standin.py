"""A stand-in ``prisma`` CLI and a realistic Next.js + Prisma app to run it in.

Why a stand-in: real Prisma downloads its engine from binaries.prisma.sh on first use, which CI cannot reach
(see ../shared/docs/prisma.md). :func:`make_project` writes an app directory (package.json, an installed
``node_modules/prisma`` of the asked version, ``prisma/schema.prisma`` or a 7.x ``prisma.config.ts``, a stale
``.env``) and an executable ``node_modules/.bin/prisma`` whose shebang is this interpreter and whose code is
:func:`main` below, so it is linted and type-checked like the rest.

The stand-in behaves like the Prisma version it plays where that matters to recovery-wizard:

- it takes the URL where that version would: ``--url`` (7.3+; 7.0-7.2 reject it), the config's variable
  (after ``import "dotenv/config"``, which never overrides), or the schema's ``directUrl``/``url`` variables
  (Prisma <= 6 without a config auto-loads ``.env`` and ``prisma/.env``, never overriding), failing as
  Prisma does when one is unset (P1012, ``PrismaConfigEnvError``);
- ``db pull --print`` (behaviour ``ok``) connects with psycopg to THAT URL and prints one ``model`` per table
  of its database, so a test proves which URL arrived by what came back;
- failure modes: ``engine-offline`` (Prisma's real offline error, exit 1), ``empty`` (exit 0, no models),
  ``p4001`` (Prisma's "introspected database was empty", exit 1, echoing ``--url`` as Prisma does),
  ``hang`` (starts a child, then sleeps; both in its process group), ``fail`` (P1001, exit 1; with ``DEBUG``
  set it echoes the URL, as debug output may).

Every run appends a JSON line to ``<app>/.prisma-standin.log``: argv, cwd, pid/pgid, whether stdin is
/dev/null, and the URL-ish variables it saw (name, whether set, value). ``$PRISMA_STANDIN_BEHAVIOUR``
overrides the behaviour baked in at creation, so one app can play several parts.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

LOG_NAME = ".prisma-standin.log"
BEHAVIOUR_ENV = "PRISMA_STANDIN_BEHAVIOUR"
BEHAVIOURS = ("ok", "engine-offline", "empty", "hang", "fail", "p4001")
REPO_ROOT = Path(__file__).resolve().parents[2]
# The .env an app had before the restore: it points at the damaged database. Nothing may end up using it.
STALE_ENV_PASSWORD = "stale-env-file-pw-0b7d"
STALE_URL = (
    f"postgresql://neondb_owner:{STALE_ENV_PASSWORD}@ep-damaged-prod-123456.invalid/neondb?sslmode=require"
)
ENGINE_HASH = "bb420e667c1820a8c05a38023385f6cc7ef8e83a"

# Prisma-only URL parameters: the engine understands them, libpq refuses them.
_PRISMA_ONLY_PARAMS = {
    "schema",
    "pgbouncer",
    "connection_limit",
    "pool_timeout",
    "socket_timeout",
    "statement_cache_size",
}


def _version_tuple(version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", version)
    assert match, version
    return int(match.group(1)), int(match.group(2))


def schema_text(version: str, *, url_var: str | None, direct_var: str | None) -> str:
    """A hand-written schema such as a team has: comments, relations, two models."""
    major, _ = _version_tuple(version)
    if major >= 7:
        generator = (
            'generator client {\n  provider = "prisma-client"\n  output   = "../src/generated/prisma"\n}'
        )
        datasource = 'datasource db {\n  provider = "postgresql"\n}'
    else:
        generator = 'generator client {\n  provider = "prisma-client-js"\n}'
        lines = ['  provider  = "postgresql"']
        if url_var:
            lines.append(f'  url       = env("{url_var}")')
        if direct_var:
            lines.append(f'  directUrl = env("{direct_var}")')
        datasource = "datasource db {\n" + "\n".join(lines) + "\n}"
    return f"""// This is your Prisma schema file,
// learn more about it in the docs: https://pris.ly/d/prisma-schema

{generator}

{datasource}

/// Our users. (Hand-written doc comment: `db pull` keeps these on re-introspection.)
model User {{
  id        Int      @id @default(autoincrement())
  email     String   @unique
  name      String?
  createdAt DateTime @default(now())
  posts     Post[]
}}

model Post {{
  id        Int     @id @default(autoincrement())
  title     String
  published Boolean @default(false)
  author    User    @relation(fields: [authorId], references: [id])
  authorId  Int
}}
"""


def config_text(*, url_expr: str, dotenv: bool = True, schema: str = "prisma/schema.prisma") -> str:
    """A Prisma 7 style ``prisma.config.ts`` whose datasource url is ``url_expr``."""
    head = 'import "dotenv/config";\n' if dotenv else ""
    return f"""{head}import {{ defineConfig, env }} from "prisma/config";

export default defineConfig({{
  schema: "{schema}",
  migrations: {{
    path: "prisma/migrations",
  }},
  datasource: {{
    url: {url_expr},
  }},
}});
"""


def make_project(
    root: Path,
    *,
    version: str = "6.19.0",
    behaviour: str = "ok",
    schema: str | None = None,
    config: str | None = None,
    url_var: str | None = "DATABASE_URL",
    direct_var: str | None = "DIRECT_URL",
    config_name: str = "prisma.config.ts",
    install: bool = True,
    env_file: bool = True,
) -> Path:
    """Write a Next.js + Prisma app at ``root`` with the stand-in as its ``node_modules/.bin/prisma``.

    ``url_var``/``direct_var`` are the names the schema (<= 6) or the default 7.x config read; a custom
    ``schema``/``config`` text must use the same names, since the stand-in reads its URL from them. 7.x apps
    get a config by default (``env("<url_var>")``); for 6.x pass ``config`` to have one. ``install=False``
    leaves out ``node_modules`` (dependencies declared, not installed).
    """
    assert behaviour in BEHAVIOURS, behaviour
    major, _ = _version_tuple(version)
    root.mkdir(parents=True, exist_ok=True)
    dependencies = {
        "next": "15.5.4",
        "react": "19.1.0",
        "react-dom": "19.1.0",
        "@prisma/client": f"^{version}",
    }
    if major >= 7:
        dependencies |= {"@prisma/adapter-pg": f"^{version}", "dotenv": "^17.2.3"}
    package = {
        "name": "homecheff-web",
        "version": "0.1.0",
        "private": True,
        "scripts": {"dev": "next dev", "build": "prisma generate && next build", "start": "next start"},
        "dependencies": dependencies,
        "devDependencies": {"prisma": f"^{version}", "typescript": "^5", "@types/node": "^22"},
    }
    (root / "package.json").write_text(json.dumps(package, indent=2) + "\n")
    (root / "next.config.ts").write_text(
        'import type { NextConfig } from "next";\n\n'
        "const nextConfig: NextConfig = {};\n\nexport default nextConfig;\n"
    )
    (root / "src" / "app").mkdir(parents=True, exist_ok=True)
    (root / "src" / "app" / "page.tsx").write_text(
        "export default function Home() {\n  return <main>HomeCheff</main>;\n}\n"
    )
    (root / "prisma").mkdir(exist_ok=True)
    (root / "prisma" / "schema.prisma").write_text(
        schema if schema is not None else schema_text(version, url_var=url_var, direct_var=direct_var)
    )
    if config is None and major >= 7:
        config = config_text(url_expr=f'env("{url_var}")' if url_var else '"postgresql://localhost/app"')
    if config is not None:
        (root / config_name).parent.mkdir(parents=True, exist_ok=True)
        (root / config_name).write_text(config)
    if env_file:
        names = [n for n in (url_var, direct_var, "DATABASE_URL", "DIRECT_URL") if n]
        (root / ".env").write_text("".join(f'{name}="{STALE_URL}"\n' for name in dict.fromkeys(names)))
    if install:
        install_standin(
            root,
            version=version,
            behaviour=behaviour,
            url_var=url_var,
            direct_var=direct_var,
            config_name=config_name if config is not None else None,
        )
    return root


def install_standin(
    root: Path,
    *,
    version: str,
    behaviour: str,
    url_var: str | None,
    direct_var: str | None,
    config_name: str | None,
) -> Path:
    """``node_modules/prisma/package.json`` and the executable ``node_modules/.bin/prisma``."""
    package_dir = root / "node_modules" / "prisma"
    package_dir.mkdir(parents=True, exist_ok=True)
    (package_dir / "package.json").write_text(
        json.dumps({"name": "prisma", "version": version, "bin": {"prisma": "build/index.js"}}, indent=2)
    )
    settings = {
        "version": version,
        "behaviour": behaviour,
        "url_var": url_var,
        "direct_var": direct_var,
        "config": config_name,
        "log": str(root.resolve() / LOG_NAME),
    }
    script = root / "node_modules" / ".bin" / "prisma"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(
        f"#!{sys.executable}\n"
        "# A stand-in for the Prisma CLI, written by tests/recovery/prisma_standin.py.\n"
        "import sys\n"
        f"sys.path.insert(0, {str(REPO_ROOT)!r})\n"
        "from tests.recovery.prisma_standin import main\n"
        f"sys.exit(main({json.dumps(settings)!r}, sys.argv))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


def read_log(root: Path) -> list[dict[str, Any]]:
    """Every record the stand-in wrote in this app, oldest first."""
    path = root / LOG_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ----------------------------------------------------------------------------------------------------------
# The stand-in itself (runs in the child process)


def main(settings_json: str, full_argv: list[str]) -> int:
    """The stand-in's entry point; ``full_argv`` is ``sys.argv`` (recorded whole, program name first)."""
    settings: dict[str, Any] = json.loads(settings_json)
    behaviour = os.environ.get(BEHAVIOUR_ENV) or settings["behaviour"]
    _record(settings, {"argv": full_argv, "behaviour": behaviour})
    argv = full_argv[1:]
    version: str = settings["version"]
    if not argv or argv[0] in ("--help", "-h"):
        print("Prisma is a modern DB toolkit to query, migrate and model your database (https://prisma.io)")
        return 0
    if behaviour == "engine-offline":
        # Every command but --help first retries the engine download (prisma.md), ~4 s, then this.
        time.sleep(0.05)
        major, _ = _version_tuple(version)
        engine = "libquery_engine.so.node" if argv[0] == "generate" and major < 7 else "schema-engine"
        print(
            f"Error: request to https://binaries.prisma.sh/all_commits/{ENGINE_HASH}/debian-openssl-3.0.x/"
            f"{engine}.gz.sha256 failed, reason: getaddrinfo ENOTFOUND binaries.prisma.sh",
            file=sys.stderr,
        )
        return 1
    if argv[0] in ("--version", "-v", "version"):
        for name in ("prisma", "@prisma/client"):
            print(f"{name:<22}: {version}")
        print(f"{'Computed binaryTarget':<22}: debian-openssl-3.0.x")
        return 0
    if argv[:2] == ["db", "pull"]:
        return _db_pull(settings, argv[2:], behaviour)
    if argv[0] == "generate":
        return _generate(settings, argv[1:], behaviour)
    print(f'! Unknown command "{argv[0]}"', file=sys.stderr)
    return 1


def _record(settings: dict[str, Any], extra: dict[str, Any]) -> None:
    watched = {"DATABASE_URL", "DIRECT_URL"} | {v for v in (settings["url_var"], settings["direct_var"]) if v}
    interesting = re.compile(r"URL|DATABASE|POSTGRES|^PG|^CI$|PRISMA|CHECKPOINT|COLOR|DOTENV|^DEBUG$")
    try:
        stdin_is_devnull = os.path.samestat(os.fstat(0), os.stat(os.devnull))
    except OSError:
        stdin_is_devnull = False  # closed outright
    record = {
        **extra,
        "cwd": os.getcwd(),
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "stdin_devnull": stdin_is_devnull,
        "vars": {
            name: {"set": name in os.environ, "value": os.environ.get(name)} for name in sorted(watched)
        },
        "env": {k: v for k, v in sorted(os.environ.items()) if interesting.search(k)},
        "env_names": sorted(os.environ),  # names only: what the child was given at all
    }
    with open(settings["log"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def _options(args: list[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--") and "=" in arg:
            key, value = arg.split("=", 1)
            options[key] = value
        elif arg in ("--schema", "--url", "--schemas", "--composite-type-depth") and i + 1 < len(args):
            options[arg] = args[i + 1]
            i += 1
        else:
            options[arg] = ""
        i += 1
    return options


def _load_dotenv(env: dict[str, str], path: Path) -> None:
    """dotenv's rule (and Prisma's): a variable already in the environment is never overridden."""
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        match = re.match(r"^\s*(?:export\s+)?([A-Za-z_]\w*)\s*=\s*(.*)$", line)
        if match and match.group(1) not in env:
            env[match.group(1)] = match.group(2).strip().strip("\"'")


def _config(settings: dict[str, Any]) -> str:
    name = settings["config"]
    path = Path.cwd() / name if name else None
    return path.read_text() if path and path.is_file() else ""


def _config_env(settings: dict[str, Any]) -> tuple[dict[str, str], str, bool]:
    """(environment after the config ran, config text, whether the config rules the datasource)."""
    major, _ = _version_tuple(settings["version"])
    env = dict(os.environ)
    config = _config(settings)
    if config and "dotenv/config" in config:
        if not _truthy(env.get("DOTENV_CONFIG_QUIET")):
            # dotenv 17 announces itself on stdout, i.e. in the middle of `--print` output.
            print("[dotenv@17.2.3] injecting env (2) from .env -- tip: ⚙️  suppress logs with { quiet: true }")
        _load_dotenv(env, Path.cwd() / ".env")
    if config:
        print(f"Loaded Prisma config from {settings['config']}.\n")
    rules = bool(config) and (major >= 7 or "datasource" in config)
    return env, config, rules


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def _resolve_url(settings: dict[str, Any], options: dict[str, str]) -> tuple[str | None, str | None]:
    """(url, error text): where this Prisma version would take its URL from."""
    major, _ = _version_tuple(settings["version"])
    env, config, config_rules = _config_env(settings)
    url_var, direct_var = settings["url_var"], settings["direct_var"]
    if config_rules:
        if url_var and "env(" in config and not env.get(url_var):
            return None, f"PrismaConfigEnvError: Missing required environment variable: {url_var}"
        if "--url" in options:
            return options["--url"], None
        if url_var is None:
            literal = re.search(r"""url:\s*["']([^"']+)["']""", config)
            if literal:
                return literal.group(1), None
            return None, "Error: The datasource.url property is required in your Prisma config file."
        if major < 7 and direct_var and "directUrl" in config and env.get(direct_var):
            return env[direct_var], None
        value = env.get(url_var)
        if not value:
            return None, "Error: The datasource.url property is required in your Prisma config file."
        return value, None
    if "--url" in options:
        return options["--url"], None
    if not config:  # Prisma <= 6 without a config loads .env itself; with one it skips that
        _load_dotenv(env, Path.cwd() / ".env")
        _load_dotenv(env, Path.cwd() / "prisma" / ".env")
    for var in (url_var, direct_var):
        if var and not env.get(var):
            return None, (
                "Error: Prisma schema validation - (get-config wasm)\nError code: P1012\n"
                f"error: Environment variable not found: {var}.\n  -->  prisma/schema.prisma:10\n\n"
                "Validation Error Count: 1\n[Context: getConfig]\n\n"
                f"Prisma CLI Version : {settings['version']}"
            )
    var = direct_var or url_var
    return (env[var], None) if var else (None, "Error: no datasource url")


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}"


def _db_pull(settings: dict[str, Any], args: list[str], behaviour: str) -> int:
    options = _options(args)
    major, minor = _version_tuple(settings["version"])
    if "--url" in options and major == 7 and minor < 3:
        print("! unknown or unexpected option: --url", file=sys.stderr)
        return 1
    url, error = _resolve_url(settings, options)
    if error or not url:
        print(error, file=sys.stderr)
        return 1
    schema_path = Path.cwd() / (options.get("--schema") or "prisma/schema.prisma")
    header = _header_blocks(schema_path.read_text())
    if behaviour == "hang":
        return _hang(settings)
    if behaviour == "empty":
        print(header)
        return 0
    if behaviour == "p4001":
        return _p4001(options)
    if behaviour == "fail":
        if os.environ.get("DEBUG"):
            print(
                f"  prisma:download Downloading https://binaries.prisma.sh/all_commits/{ENGINE_HASH}/"
                "debian-openssl-3.0.x/schema-engine.gz to node_modules/@prisma/engines/schema-engine +1ms",
                file=sys.stderr,
            )
            print(f"  prisma:schemaEngine:rpc connecting to {url} +0ms", file=sys.stderr)
        return _p1001(url)
    try:
        tables = _introspect(url)
    except Exception as exc:
        print(f"  prisma:schemaEngine connection error: {type(exc).__name__}", file=sys.stderr)
        return _p1001(url)
    if not tables:
        return _p4001(options)
    print(header + "\n" + "\n".join(_model(name, columns) for name, columns in tables.items()))
    return 0


def _p1001(url: str) -> int:
    where = _host_port(url)
    print(
        f"Error: P1001: Can't reach database server at `{where}`\n\n"
        f"Please make sure your database server is running at `{where}`.",
        file=sys.stderr,
    )
    return 1


def _p4001(options: dict[str, str]) -> int:
    # Prisma's own text; it does echo a --url here.
    print(
        f"\nP4001 The introspected database was empty: {options.get('--url', '')}\n\n"
        "prisma db pull could not create any models in your schema.prisma file and you will not be able to"
        " generate Prisma Client with the prisma generate command.",
        file=sys.stderr,
    )
    return 1


def _hang(settings: dict[str, Any]) -> int:
    # Like Prisma and its schema engine: a child in the same process group, which a timeout must end too.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print("Introspecting based on datasource defined in prisma/schema.prisma", file=sys.stderr, flush=True)
    _record(settings, {"argv": sys.argv, "event": "hang", "pids": [os.getpid(), child.pid]})
    time.sleep(600)
    return 0


def _header_blocks(schema: str) -> str:
    """The leading comments, generator and datasource blocks that `db pull` carries over."""
    blocks = re.findall(r"^(?:generator|datasource)\s+\w+\s*\{[^}]*\}", schema, re.MULTILINE)
    comments = re.match(r"(?:\s*//[^\n]*\n)*", schema)
    lead = comments.group(0).strip() + "\n\n" if comments and comments.group(0).strip() else ""
    return lead + "\n\n".join(blocks) + "\n"


def _libpq_url(url: str) -> tuple[str, str]:
    """(a URL libpq accepts, the Postgres schema Prisma would introspect)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = dict(query).get("schema", "public")
    kept = [(k, v) for k, v in query if k not in _PRISMA_ONLY_PARAMS]
    return urlunsplit(parts._replace(query=urlencode(kept))), schema


_TYPES = {
    "int2": "Int",
    "int4": "Int",
    "int8": "BigInt",
    "text": "String",
    "varchar": "String",
    "bpchar": "String",
    "bool": "Boolean",
    "timestamp": "DateTime",
    "timestamptz": "DateTime",
    "date": "DateTime",
    "numeric": "Decimal",
    "float4": "Float",
    "float8": "Float",
    "json": "Json",
    "jsonb": "Json",
    "uuid": "String",
    "bytea": "Bytes",
}
_NATIVE = {"uuid": "@db.Uuid", "timestamp": "@db.Timestamp(3)", "date": "@db.Date", "numeric": "@db.Decimal"}


def _introspect(url: str) -> dict[str, list[tuple[str, str, bool, str | None, bool, bool]]]:
    import psycopg

    conninfo, schema = _libpq_url(url)
    query = """
        SELECT c.table_name, c.column_name, c.udt_name, c.is_nullable = 'YES', c.column_default,
               EXISTS (SELECT 1 FROM information_schema.table_constraints tc
                       JOIN information_schema.key_column_usage k
                         ON k.constraint_schema = tc.constraint_schema
                        AND k.constraint_name = tc.constraint_name
                       WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = c.table_schema
                         AND tc.table_name = c.table_name AND k.column_name = c.column_name),
               EXISTS (SELECT 1 FROM information_schema.table_constraints tc
                       JOIN information_schema.key_column_usage k
                         ON k.constraint_schema = tc.constraint_schema
                        AND k.constraint_name = tc.constraint_name
                       WHERE tc.constraint_type = 'UNIQUE' AND tc.table_schema = c.table_schema
                         AND tc.table_name = c.table_name AND k.column_name = c.column_name)
        FROM information_schema.columns c
        JOIN information_schema.tables t
          ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
        WHERE c.table_schema = %s
        ORDER BY c.table_name, c.ordinal_position
    """
    tables: dict[str, list[tuple[str, str, bool, str | None, bool, bool]]] = {}
    with psycopg.connect(conninfo, connect_timeout=5) as conn:
        for table, column, udt, nullable, default, pk, unique in conn.execute(query, [schema]):
            tables.setdefault(table, []).append((column, udt, nullable, default, pk, unique))
    return tables


def _model(name: str, columns: list[tuple[str, str, bool, str | None, bool, bool]]) -> str:
    rows = []
    for column, udt, nullable, default, pk, unique in columns:
        prisma_type = _TYPES.get(udt, f'Unsupported("{udt}")') + ("?" if nullable else "")
        attributes = []
        if pk:
            attributes.append("@id")
        if default and default.startswith("nextval("):
            attributes.append("@default(autoincrement())")
        elif default and ("CURRENT_TIMESTAMP" in default or "now()" in default):
            attributes.append("@default(now())")
        elif default in ("true", "false"):
            attributes.append(f"@default({default})")
        if unique:
            attributes.append("@unique")
        if udt in _NATIVE:
            attributes.append(_NATIVE[udt])
        rows.append((column, prisma_type, " ".join(attributes)))
    width = max(len(c) for c, _, _ in rows)
    type_width = max(len(t) for _, t, _ in rows)
    body = "\n".join(f"  {c:<{width}} {t:<{type_width}} {a}".rstrip() for c, t, a in rows)
    return f"model {name} {{\n{body}\n}}\n"


def _generate(settings: dict[str, Any], args: list[str], behaviour: str) -> int:
    major, _ = _version_tuple(settings["version"])
    env, config, config_rules = _config_env(settings)
    url_var = settings["url_var"]
    if config_rules and url_var and "env(" in config and not env.get(url_var):
        # prisma/config's env() throws at load time, even for a command that never connects.
        print(f"PrismaConfigEnvError: Missing required environment variable: {url_var}", file=sys.stderr)
        return 1
    if behaviour == "hang":
        return _hang(settings)
    if behaviour == "fail":
        print("Error: Could not resolve @prisma/client in the current project.", file=sys.stderr)
        return 1
    target = "./src/generated/prisma" if major >= 7 else "./node_modules/@prisma/client"
    print("Prisma schema loaded from prisma/schema.prisma\n")
    print(f"✔ Generated Prisma Client (v{settings['version']}) to {target} in 48ms\n")
    print("Start by importing your Prisma Client (See: https://pris.ly/d/importing-client)")
    return 0
