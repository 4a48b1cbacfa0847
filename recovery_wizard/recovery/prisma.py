"""Run the project's own Prisma CLI after a restore: ``db pull`` against the DIRECT url, then ``generate``.

Design, and why:

- **Detect, do not assume.** :func:`detect` reads what the CLI itself would read: the version from
  ``node_modules/prisma/package.json``, the config file Prisma would pick (``prisma7.config.*`` first from
  7.10, then ``prisma.config.*`` / ``.config/prisma*``, the same order as Prisma's loader), the schema it
  would load (config ``schema``, ``package.json`` ``prisma.schema``, then ``./schema.prisma`` and
  ``./prisma/schema.prisma``), and the *names* of the variables holding the URLs (schema
  ``url``/``directUrl = env("…")`` up to 6, config ``env("…")`` / ``process.env.…`` for config projects).
  Names differ between teams (``DATABASE_URL_UNPOOLED``, ``POSTGRES_URL_NON_POOLING`` …); guessing one
  would make Prisma read whatever the old ``.env`` still holds, i.e. possibly the damaged database. When
  the config's URL cannot be read statically we report ``None`` rather than guess.
- **Only the project's binary.** ``node_modules/.bin/prisma``, never ``npx prisma`` (which may fetch the
  newest major and fail on an older project). The hints for people say ``npx --no-install prisma``.
- **How the URL reaches Prisma.** Through the environment: the variable ``db pull`` reads (``directUrl``'s
  if any, else ``url``'s) and the ``url`` variable too, because Prisma <= 6 refuses a schema whose
  ``env("…")`` is unset, and so does a 7.x config using ``env()``. Variables we set win over ``.env``
  (Prisma's and dotenv's loaders never override the process environment). ``--url`` puts the password in
  argv, which any local user can read in ``ps`` for as long as Prisma runs, while the environment is only
  readable by the same user and root; so ``--url`` is used only when the environment cannot do it: Prisma
  7.3+ (the first 7.x with ``--url``) whose config reads no variable we can name, or loads ``.env`` with
  ``override: true``. Prisma <= 6 never gets ``--url``: it would copy the URL into the printed datasource.
- **Pull prints, we write.** ``db pull --print`` leaves ``schema.prisma`` alone; we back it up first (mode
  0600: a schema may hold a literal URL), check that ``model`` blocks came back (a pull can exit 0 having
  found nothing), show a masked diff, and write only when asked, atomically (temp file + rename, mode kept),
  and only if nobody changed the file meanwhile. The temp file is written in the run's git-ignored directory,
  not beside the schema: a run killed before the rename leaves nothing in the app's tree to be committed.
- **Failures a person can act on.** Offline, Prisma first tries to download its engine and fails with
  ``getaddrinfo ENOTFOUND binaries.prisma.sh`` before touching the database: that is reported as "the
  Prisma engine could not be downloaded", never as an unreachable database. Every error's ``hint`` holds
  the exact commands to run by hand, naming variables, never their values.
- **A timeout ends the whole tree.** Prisma starts a schema-engine child; the CLI runs in a new session
  (its own process group) and a timeout or a cancellation signals the group, TERM then KILL.
- **Secrets.** Output lines are redacted (every Postgres URL, every registered ``Secret``, the URL and its
  decoded password) before any callback, tail, message or log sees them. Values that hold the URL (argv
  with ``--url``, the child's environment, raw output, schema texts) are boxed in ``_Hidden`` so that a
  traceback printed with locals (Textual's crash screen) shows nothing of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import difflib
import errno
import json
import logging
import os
import re
import shlex
import signal
import stat
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Generic, TypeVar
from urllib.parse import unquote, urlsplit

from recovery_wizard.errors import RecoveryError
from recovery_wizard.redact import Secret, redact

log = logging.getLogger(__name__)

OutputCallback = Callable[[str], None]

# What a person types by hand. `--no-install` keeps npx from fetching a different Prisma than the project's.
NPX_PRISMA: Final = "npx --no-install prisma"
URL_PLACEHOLDER: Final = "<restored direct URL>"

# `generate` never connects, but a 7.x config calling `env("X")` throws when X is unset. An unresolvable
# (.invalid is reserved by RFC 2606) and password-less URL satisfies it without pointing anywhere real.
GENERATE_PLACEHOLDER_URL: Final = "postgresql://prisma-generate@placeholder.invalid:5432/placeholder"

# After a TERM, how long the group gets to exit before KILL.
_KILL_GRACE_SECONDS: Final = 2.0
# Once Prisma itself exited, how long its output may take to drain (a leftover child can hold the pipe).
_DRAIN_SECONDS: Final = 2.0
_TAIL_LINES: Final = 15
_MAX_LINE_BYTES: Final = 1 << 20

_T = TypeVar("_T")


class _Hidden(Generic[_T]):
    """A value that may hold a secret (the URL, argv with ``--url``, the child's environment, raw output).

    Its ``repr`` shows nothing, so a traceback printed with locals (Textual's crash screen, rich's
    ``show_locals``, ``capture_locals=True``) cannot print what a frame on the raise path was holding.
    """

    __slots__ = ("value",)

    def __init__(self, value: _T) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<hidden>"


# --------------------------------------------------------------------------------------------------------
# Errors


class PrismaError(RecoveryError):
    """A Prisma step failed; ``hint`` holds the command(s) to run by hand.

    ``output_tail`` is the last lines Prisma printed (already redacted), ``exit_code`` its exit status when
    it ran to the end.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str = "",
        output_tail: Sequence[str] = (),
        exit_code: int | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.output_tail = tuple(redact(line) for line in output_tail)
        self.exit_code = exit_code


class PrismaNotFoundError(PrismaError):
    """The project has no ``node_modules/.bin/prisma``: its dependencies are not installed."""


class PrismaEngineDownloadError(PrismaError):
    """Prisma could not download its engine (no internet): neither the schema nor the database was touched."""


class PrismaPullEmptyError(PrismaError):
    """``db pull`` found no tables: it printed no ``model`` block (or said P4001). The schema is untouched."""


class PrismaTimeoutError(PrismaError):
    """Prisma did not finish in time; its whole process group was stopped."""


class PrismaFailedError(PrismaError):
    """Prisma exited with an error; the message ends with the last lines of its (redacted) output."""


# --------------------------------------------------------------------------------------------------------
# Detection

_CONFIG_EXTENSIONS: Final = (".js", ".ts", ".mjs", ".cjs", ".mts", ".cts")
# Prisma 7.10+ looks for these before anything else (so a repo can carry a 6.x and a 7.x config at once).
_PRISMA7_CONFIG_CANDIDATES: Final = tuple(f"prisma7.config{ext}" for ext in _CONFIG_EXTENSIONS) + tuple(
    f".config/prisma7{ext}" for ext in _CONFIG_EXTENSIONS
)
_CONFIG_CANDIDATES: Final = tuple(
    candidate
    for base in ("prisma.config", ".config/prisma", ".config/prisma.config")
    for candidate in (
        *(f"{base}{ext}" for ext in _CONFIG_EXTENSIONS),
        *(f"{base}/index{ext}" for ext in _CONFIG_EXTENSIONS),
    )
)
# The CLI's own default schema locations, in its order.
_DEFAULT_SCHEMAS: Final = ("schema.prisma", "prisma/schema.prisma")
_DEPENDENCY_KEYS: Final = ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies")
_VERSION_RE: Final = re.compile(r"^\s*v?(\d+)\.(\d+)")

_IDENT: Final = r"[A-Za-z_$][\w$]*"
_ENV_NAME: Final = r"[A-Za-z_][A-Za-z0-9_]*"
# env("X") / env<Env>("X") (prisma/config's helper), process.env.X, process.env["X"], import.meta.env.X.
_ENV_REF_RE: Final = re.compile(
    rf"""(?<![\w$.])env\s*(?:<[^<>()]*>)?\s*\(\s*(?P<q1>["'`])(?P<a>{_ENV_NAME})(?P=q1)\s*\)"""
    rf"""|(?:process|import\.meta|Bun)\.env(?:\s*\.\s*(?P<b>{_ENV_NAME})"""
    rf"""|\s*\[\s*(?P<q2>["'`])(?P<c>{_ENV_NAME})(?P=q2)\s*\])"""
)
_SCHEMA_ENV_RE: Final = r'^\s*{key}\s*=\s*env\(\s*"(?P<name>[^"]+)"\s*\)'
_DATASOURCE_BLOCK_RE: Final = re.compile(r"^[ \t]*datasource\s+\w+\s*\{[^}]*\}", re.MULTILINE)
_MODEL_RE: Final = re.compile(r"^[ \t]*model\s+\w+\s*\{", re.MULTILINE)


@dataclass(frozen=True)
class PrismaProject:
    """What :func:`detect` found in an app: the Prisma CLI, its version, its files and URL variables."""

    root: Path
    binary: Path | None
    version: str | None
    major: int | None
    minor: int | None
    schema_path: Path | None
    config_path: Path | None
    url_var: str | None
    direct_var: str | None
    config_loads_dotenv: bool

    @property
    def supports_url_flag(self) -> bool:
        """``db pull --url`` exists and is honoured: Prisma 7.3+ (parsed but undocumented before 7, gone in
        7.0-7.2)."""
        return self.major is not None and (self.major, self.minor or 0) >= (7, 3)

    @property
    def pull_env_var(self) -> str | None:
        """The variable ``db pull`` takes its URL from: ``directUrl``'s when the project has one."""
        return self.direct_var or self.url_var


def detect(root: Path) -> PrismaProject | None:
    """Find Prisma in the app at ``root``; ``None`` when there is none (no schema, config or dependency)."""
    root = Path(root).resolve()
    if not root.is_dir():
        return None
    package = _read_json(root / "package.json")
    installed = _read_json(root / "node_modules" / "prisma" / "package.json")
    version = installed.get("version") if isinstance(installed.get("version"), str) else None
    major = minor = None
    if version and (match := _VERSION_RE.match(version)):
        major, minor = int(match.group(1)), int(match.group(2))

    config_path = _find_config(root, major, minor)
    config_text = _strip_comments(_read_text(config_path), js=True) if config_path else ""
    schema_path = _find_schema(root, package, config_path, config_text, major)
    declared = any(
        isinstance(package.get(key), dict) and ({"prisma", "@prisma/client"} & set(package[key]))
        for key in _DEPENDENCY_KEYS
    )
    if not (schema_path or config_path or declared or installed):
        return None

    url_var, direct_var = _url_vars(schema_path, config_text, major)
    return PrismaProject(
        root=root,
        binary=_find_binary(root),
        version=version,
        major=major,
        minor=minor,
        schema_path=schema_path,
        config_path=config_path,
        url_var=url_var,
        direct_var=direct_var,
        config_loads_dotenv=_loads_dotenv(config_text),
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_text(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _find_binary(root: Path) -> Path | None:
    bin_dir = root / "node_modules" / ".bin"
    names = ("prisma.cmd", "prisma") if os.name == "nt" else ("prisma",)
    for name in names:
        # exists() follows the symlink npm makes: a dangling link means Prisma is not really installed.
        if (bin_dir / name).exists():
            return bin_dir / name
    return None


def _find_config(root: Path, major: int | None, minor: int | None) -> Path | None:
    if major is not None and major < 6:
        return None  # Prisma 5 reads no config file: one lying around does not change what it does
    candidates: tuple[str, ...] = _CONFIG_CANDIDATES
    if major is None or (major, minor or 0) >= (7, 10):
        candidates = _PRISMA7_CONFIG_CANDIDATES + candidates
    for candidate in candidates:
        path = root / candidate
        if path.is_file():
            return path
    return None


def _find_schema(
    root: Path, package: dict[str, Any], config_path: Path | None, config_text: str, major: int | None
) -> Path | None:
    if config_path is not None:
        from_config = _config_schema(config_text)
        if from_config:
            path = (config_path.parent / from_config).resolve()
            return path if path.exists() else None
    # package.json "prisma.schema" is read only without a config file, and no longer by Prisma 7.
    settings = package.get("prisma")
    if config_path is None and (major is None or major < 7) and isinstance(settings, dict):
        custom = settings.get("schema")
        if isinstance(custom, str) and custom:
            path = (root / custom).resolve()
            return path if path.exists() else None
    for candidate in _DEFAULT_SCHEMAS:
        if (root / candidate).is_file():
            return root / candidate
    return None


def _url_vars(schema_path: Path | None, config_text: str, major: int | None) -> tuple[str | None, str | None]:
    """(url variable, directUrl variable) that the CLI will read, by name."""
    if config_text:
        datasource = _config_datasource(config_text)
        if datasource is not None or (major is not None and major >= 7):
            # The config's datasource rules (7.x: the only place a URL can live). 7.x has no directUrl.
            entries = datasource or {}
            url_var = _expr_env_var(entries.get("url", ""), config_text)
            direct_var = None
            if major is None or major < 7:
                direct_var = _expr_env_var(entries.get("directUrl", ""), config_text)
            return url_var, direct_var
    if schema_path is None or not schema_path.is_file():
        return None, None
    block = _DATASOURCE_BLOCK_RE.search(_strip_comments(_read_text(schema_path), js=False))
    if block is None:
        return None, None
    body = block.group(0)
    url = re.search(_SCHEMA_ENV_RE.format(key="url"), body, re.MULTILINE)
    direct = re.search(_SCHEMA_ENV_RE.format(key="directUrl"), body, re.MULTILINE)
    return (url.group("name") if url else None), (direct.group("name") if direct else None)


def _strip_comments(text: str, *, js: bool) -> str:
    """Drop ``//`` and (in JS) ``/* */`` comments, leaving string literals alone (a URL holds ``//``)."""
    quotes = "\"'`" if js else '"'
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in quotes:
            j = i + 1
            while j < n and text[j] != ch:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif js and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _balanced(text: str, start: int) -> str | None:
    """The text inside the bracket at ``text[start]`` up to its match (strings skipped), or None."""
    pairs = {"{": "}", "(": ")", "[": "]"}
    stack = [pairs[text[start]]]
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch in "\"'`":
            j = i + 1
            while j < len(text) and text[j] != ch:
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if ch in pairs:
            stack.append(pairs[ch])
        elif ch in ")}]":
            if ch != stack.pop():
                return None
            if not stack:
                return text[start + 1 : i]
        i += 1
    return None


def _split_top_level(body: str) -> list[str]:
    parts: list[str] = []
    depth, start, i = 0, 0, 0
    while i < len(body):
        ch = body[i]
        if ch in "\"'`":
            j = i + 1
            while j < len(body) and body[j] != ch:
                j += 2 if body[j] == "\\" else 1
            i = j + 1
            continue
        if ch in "{([":
            depth += 1
        elif ch in "})]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
        i += 1
    parts.append(body[start:])
    return [p.strip() for p in parts if p.strip()]


def _object_entries(body: str) -> dict[str, str]:
    entries: dict[str, str] = {}
    for part in _split_top_level(body):
        match = re.match(rf"""^(?:["'](?P<q>[^"']+)["']|(?P<k>{_IDENT}))\s*(?::\s*(?P<v>.*))?$""", part, re.S)
        if match:
            key = match.group("q") or match.group("k")
            # `{ url }` is shorthand for `{ url: url }`.
            entries[key] = match.group("v") if match.group("v") is not None else key
    return entries


def _resolve_object(text: str, expr: str, depth: int = 0) -> dict[str, str] | None:
    expr = expr.strip()
    if expr.startswith("{"):
        body = _balanced(expr, 0)
        return _object_entries(body) if body is not None else None
    if depth < 3 and re.fullmatch(_IDENT, expr):
        value = _declaration(text, expr)
        if value is not None:
            return _resolve_object(text, value, depth + 1)
    return None


def _declaration(text: str, name: str) -> str | None:
    """The initialiser of ``const|let|var name = …`` (up to its end at top level)."""
    match = re.search(rf"\b(?:const|let|var)\s+{re.escape(name)}\s*(?::[^=]+)?=\s*", text)
    if match is None:
        return None
    rest = text[match.end() :]
    if rest[:1] in "{([":
        inner = _balanced(rest, 0)
        return rest[: len(inner) + 2] if inner is not None else None
    end = re.search(r"[;\n]", rest)
    return rest[: end.start()] if end else rest


def _config_datasource(text: str) -> dict[str, str] | None:
    match = re.search(r"""(?<![\w$.])["']?datasource["']?\s*:\s*""", text)
    if match is None:
        # `defineConfig({ datasource, … })`: shorthand for a variable of that name.
        if re.search(r"[{,]\s*datasource\s*[,}]", text):
            value = _declaration(text, "datasource")
            return _resolve_object(text, value) if value else None
        return None
    rest = text[match.end() :]
    if rest.startswith("{"):
        return _resolve_object(text, rest)
    ident = re.match(_IDENT, rest)
    return _resolve_object(text, ident.group(0)) if ident else None


def _expr_env_var(expr: str, text: str, depth: int = 0) -> str | None:
    """The variable an expression reads (``env("X")``, ``process.env.X``, a const holding one), or None."""
    match = _ENV_REF_RE.search(expr)
    if match:
        return match.group("a") or match.group("b") or match.group("c")
    expr = expr.strip()
    if depth < 3 and re.fullmatch(_IDENT, expr):
        value = _declaration(text, expr)
        if value is not None:
            return _expr_env_var(value, text, depth + 1)
    return None


def _config_schema(text: str) -> str | None:
    match = re.search(r"""(?<![\w$.])["']?schema["']?\s*:\s*""", text)
    if match is None:
        return None
    rest = text[match.end() :]
    literal = re.match(r"""(["'`])([^"'`]+)\1""", rest)
    if literal:
        return literal.group(2)
    # path.join("prisma", "schema.prisma") / path.resolve(__dirname, "prisma", …): join the literals.
    call = re.match(r"(?:path\.)?(?:join|resolve)\s*\(", rest)
    if call:
        args = _balanced(rest, call.end() - 1)
        if args is not None:
            parts = re.findall(r"""(["'`])([^"'`]*)\1""", args)
            if parts:
                return str(Path(*(p for _, p in parts)))
    return None


def _loads_dotenv(text: str) -> bool:
    if re.search(r"""["'](?:dotenv|@dotenvx/dotenvx)/config["']""", text):
        return True
    if re.search(r"\bdotenv\.config\s*\(|\bprocess\.loadEnvFile\s*\(", text):
        return True
    imports_dotenv = re.search(r"""from\s+["']dotenv["']|require\(\s*["']dotenv["']\s*\)""", text)
    return bool(imports_dotenv and re.search(r"(?<![\w$.])config\s*\(", text))


def _dotenv_overrides(project: PrismaProject) -> bool:
    """The config loads ``.env`` with ``override: true``, so a variable we set would lose to ``.env``."""
    if not (project.config_path and project.config_loads_dotenv):
        return False
    text = _strip_comments(_read_text(project.config_path), js=True)
    return bool(re.search(r"\boverride\s*:\s*true\b", text))


def _pull_uses_url_flag(project: PrismaProject) -> bool:
    return (
        project.major is not None
        and project.major >= 7
        and project.supports_url_flag
        and (project.url_var is None or _dotenv_overrides(project))
    )


def _package_manager(root: Path) -> str:
    declared = _read_json(root / "package.json").get("packageManager")
    if isinstance(declared, str) and declared.split("@")[0] in {"npm", "pnpm", "yarn", "bun"}:
        return declared.split("@")[0]
    for lockfile, manager in (
        ("pnpm-lock.yaml", "pnpm"),
        ("yarn.lock", "yarn"),
        ("bun.lock", "bun"),
        ("bun.lockb", "bun"),
    ):
        if (root / lockfile).exists():
            return manager
    return "npm"


# --------------------------------------------------------------------------------------------------------
# Manual commands (hints)


def manual_commands(project: PrismaProject, *, pull: bool = True, generate: bool = True) -> str:
    """The commands to run by hand in the app's directory, with variable names and never their values."""
    lines = [f"cd {shlex.quote(str(project.root))}"]
    if pull:
        if _pull_uses_url_flag(project):
            lines.append(f"{NPX_PRISMA} db pull --url '{URL_PLACEHOLDER}'")
        elif project.pull_env_var:
            names = [project.pull_env_var]
            if project.url_var and project.url_var not in names:
                names.append(project.url_var)
            assignments = " ".join(f"{name}='{URL_PLACEHOLDER}'" for name in names)
            lines.append(f"{assignments} {NPX_PRISMA} db pull")
        else:
            lines.append(f"# point the datasource URL at the {URL_PLACEHOLDER}, then:")
            lines.append(f"{NPX_PRISMA} db pull")
    if generate:
        lines.append(f"{NPX_PRISMA} generate")
    return "\n".join(lines)


def _with_commands(project: PrismaProject, intro: str, *, pull: bool, generate: bool = True) -> str:
    commands = "\n".join(
        f"  {line}" for line in manual_commands(project, pull=pull, generate=generate).split("\n")
    )
    return f"{intro}\n{commands}"


# --------------------------------------------------------------------------------------------------------
# Running the CLI

_ANSI_RE: Final = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
# Prisma's engine download failing: DNS (ENOTFOUND / EAI_AGAIN), refused, reset, proxy, certificates, 404s
# from binaries.prisma.sh or a PRISMA_ENGINES_MIRROR. A line that merely mentions the host (DEBUG=prisma*
# logs every successful download) must also say it failed.
_ENGINE_DOWNLOAD_RE: Final = re.compile(
    r"request to \S*(?:binaries\.prisma\.sh|/all_commits/)\S* failed"
    r"|(?:ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT)\s+binaries\.prisma\.sh"
    r"|(?:Not Found|Forbidden)\s+https?://binaries\.prisma\.sh"
    r"|Failed to fetch (?:the engine|sha256 checksum)"
    r"|could not (?:fetch|download) (?:the )?(?:query|schema|migration) engine"
    r"|PRISMA_ENGINES_CHECKSUM_IGNORE_MISSING",
    re.IGNORECASE,
)
_ERROR_CODE_RE: Final = re.compile(r"\bP(\d{4})\b")
_KNOWN_CODES: Final = {
    "P1000": "The database refused the user name or password in the URL.",
    "P1001": "Prisma could not reach the database server (is the restored branch's compute running?).",
    "P1002": "The database server was reached but timed out.",
    "P1003": "The database named in the URL does not exist.",
    "P1010": "The database user may not access this database.",
    "P1011": "The TLS connection to the database failed.",
    "P1012": "Prisma rejected the schema or config (often: an environment variable it needs is not set).",
    "P1013": "The database URL is not valid.",
    "P1017": "The database server closed the connection.",
}
# CLI chatter that some versions print on stdout even with --print (Prisma issue 27005, dotenv 17's banner).
_CHATTER_RE: Final = re.compile(
    r"^(?:Prisma schema loaded from |Loaded Prisma config from |Prisma config detected|Environment variables "
    r"loaded from |Datasource \"|\[dotenv@|◇ injected env|warn |Warning: |Introspecting)"
)


@dataclass
class _Completed:
    returncode: int
    stdout: str = field(repr=False)  # unredacted: it becomes schema.prisma
    tail: list[str]
    engine_line: str | None
    codes: set[str]


@dataclass
class _Output:
    """Splits both pipes into lines, redacts them, feeds the callback and keeps what classification needs."""

    on_output: OutputCallback | None
    secrets: _Hidden[tuple[str, ...]]
    stdout: bytearray = field(default_factory=bytearray, repr=False)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=_TAIL_LINES))
    engine_line: str | None = None
    codes: set[str] = field(default_factory=set)
    callback_error: Exception | None = None

    async def pump(self, stream: asyncio.StreamReader, *, keep: bool, echo: bool = True) -> None:
        pending = b""
        while chunk := await stream.read(65536):
            if keep:
                self.stdout += chunk
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                self._emit(raw, echo)
            if len(pending) > _MAX_LINE_BYTES:
                self._emit(pending, echo)
                pending = b""
        if pending:
            self._emit(pending, echo)

    def _emit(self, raw: bytes, echo: bool) -> None:
        text = _ANSI_RE.sub("", raw.decode("utf-8", errors="replace")).rstrip("\r")
        # A spinner redraws one line with '\r'; each redraw is a line of its own for us.
        for segment in text.split("\r") if "\r" in text else [text]:
            self._line(segment.rstrip(), echo)

    def _line(self, text: str, echo: bool = True) -> None:
        safe = redact(text, self.secrets.value)
        if self.engine_line is None and _ENGINE_DOWNLOAD_RE.search(text):
            self.engine_line = safe.strip()
        self.codes.update(f"P{code}" for code in _ERROR_CODE_RE.findall(text))
        if safe.strip():
            self.tail.append(safe)
        # `db pull --print` writes the whole schema to stdout: it is shown once, as a diff, not streamed.
        if echo and self.on_output is not None and self.callback_error is None:
            try:
                self.on_output(safe)
            except Exception as exc:
                # Keep draining the pipes (a stalled pipe would hang Prisma); re-raised once it has exited.
                self.callback_error = exc


def _secrets_of(url: Secret | None) -> _Hidden[tuple[str, ...]]:
    """The URL and its password as Prisma might print them (raw, or percent-decoded)."""
    if url is None:
        return _Hidden(())
    found = [url.reveal()]
    with contextlib.suppress(ValueError):
        password = urlsplit(url.reveal()).password
        if password:
            found += [password, unquote(password)]
    return _Hidden(tuple(found))


# What a Prisma child inherits from our environment, and nothing else: our environment holds NEON_API_KEY
# (and whatever else the shell exported: cloud keys, tokens) that Prisma has no use for, and anything a
# child holds can end up in its crash reports, debug logs or telemetry. Kept: finding and running node and
# the engines (PATH, HOME, the package managers' and version managers' variables, PRISMA_*), locale and
# time zone, temp and cache dirs, the network path (proxies, CA bundles), DEBUG (Prisma's own logging),
# Windows' system variables; plus the database variables the project's schema and config name.
_CHILD_ENV_NAMES: Final = frozenset(
    "PATH HOME USER LOGNAME SHELL LANG LANGUAGE TZ TERM TMPDIR TMP TEMP DEBUG "
    "HTTP_PROXY HTTPS_PROXY NO_PROXY ALL_PROXY http_proxy https_proxy no_proxy all_proxy "
    "SSL_CERT_FILE SSL_CERT_DIR "
    "SYSTEMROOT SYSTEMDRIVE COMSPEC PATHEXT WINDIR APPDATA LOCALAPPDATA USERPROFILE PROGRAMDATA "
    "PROGRAMFILES PROGRAMFILES(X86) HOMEDRIVE HOMEPATH".split()
)
_CHILD_ENV_PREFIXES: Final = (
    "LC_",
    "XDG_",
    "NODE_",
    "NPM_",
    "npm_",
    "PRISMA_",
    "NVM_",
    "FNM_",
    "VOLTA_",
    "COREPACK_",
    "PNPM_",
    "YARN_",
    "BUN_",
)


def _variables_named_by(project: PrismaProject) -> set[str]:
    """The environment variables the project's schema and config refer to (``env("X")``, ``process.env.X``)."""
    names = {name for name in (project.url_var, project.direct_var) if name}
    for path in (project.schema_path, project.config_path):
        if path is None:
            continue
        text = _read_text(path)
        names.update(m.group("a") or m.group("b") or m.group("c") for m in _ENV_REF_RE.finditer(text))
    return names


def _child_env(extra: Mapping[str, str], project: PrismaProject) -> _Hidden[dict[str, str]]:
    wanted = _variables_named_by(project)
    env = {
        name: value
        for name, value in os.environ.items()
        if name in _CHILD_ENV_NAMES
        or name.upper() in _CHILD_ENV_NAMES
        or name.startswith(_CHILD_ENV_PREFIXES)
        or name in wanted
    }
    # Colour codes would end up in the printed schema and the log; chalk honours FORCE_COLOR over NO_COLOR.
    env.pop("FORCE_COLOR", None)
    env.update(
        {
            "CI": "1",  # no prompts, no spinners
            "PRISMA_HIDE_UPDATE_MESSAGE": "1",
            "CHECKPOINT_DISABLE": "1",  # Prisma's version check phones home; offline it only adds delay
            "NO_COLOR": "1",
            "DOTENV_CONFIG_QUIET": "true",  # dotenv 17 prints a banner on stdout, i.e. into the schema
        }
    )
    env.update(extra)
    return _Hidden(env)


def _url_env(project: PrismaProject, url: Secret) -> dict[str, str]:
    return {name: url.reveal() for name in (project.pull_env_var, project.url_var) if name}


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs. Zombies do not count: they are dead already, and a
    container's PID 1 may never reap the orphans, which ``killpg(pgid, 0)`` would still find."""
    if os.path.isdir("/proc"):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(os.path.join(entry.path, "stat"), "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()  # after "(comm)": state, ppid, pgrp, ...
            except (OSError, IndexError):
                continue
            if len(fields) > 2 and fields[2] == str(pgid).encode() and fields[0] not in (b"Z", b"X"):
                return True
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


async def _stop_group(proc: asyncio.subprocess.Process) -> None:
    """TERM the process group (Prisma and its engine child), then KILL whatever is left after a grace."""
    if os.name != "posix":
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        return
    pgid = proc.pid  # start_new_session=True made Prisma the leader of a group with its own pid as id
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    else:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _KILL_GRACE_SECONDS
        if proc.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), _KILL_GRACE_SECONDS)
        # The leader is gone; give the rest of the group the remaining grace. Nothing signals a grandchild's
        # exit to us (it is not our child), so poll.
        while loop.time() < deadline:
            if not _group_alive(pgid):
                break
            await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    if proc.returncode is None:
        await proc.wait()


async def _settle(tasks: Iterable[asyncio.Task[None]]) -> None:
    pending = [t for t in tasks if not t.done()]
    if pending:
        _, pending_set = await asyncio.wait(pending, timeout=1.0)
        for task in pending_set:
            task.cancel()
        for task in pending_set:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _run(
    project: PrismaProject,
    action: str,
    argv: _Hidden[list[str]],
    env: _Hidden[dict[str, str]],
    *,
    timeout: float,  # noqa: ASYNC109 - a subprocess deadline, enforced with asyncio.timeout inside
    on_output: OutputCallback | None,
    secrets: _Hidden[tuple[str, ...]],
    timeout_hint: str,
    echo_stdout: bool = True,
) -> _Completed:
    output = _Output(on_output, secrets)
    log.info("running `prisma %s` (Prisma %s) in %s", action, project.version or "?", project.root)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv.value,
            cwd=project.root,
            env=env.value,
            stdin=asyncio.subprocess.DEVNULL,  # Prisma must never wait for an answer nobody will type
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group, so a timeout can end the engine child too
        )
    except FileNotFoundError:
        raise _not_found(project, action) from None
    except OSError as exc:
        raise PrismaFailedError(
            f"The project's Prisma CLI ({project.binary}) could not be started: {exc.strerror or exc}.",
            hint=_with_commands(project, "Reinstall the dependencies, then run:", pull=action == "db pull"),
        ) from None
    assert proc.stdout is not None and proc.stderr is not None
    pumps = [
        asyncio.create_task(output.pump(proc.stdout, keep=True, echo=echo_stdout)),
        asyncio.create_task(output.pump(proc.stderr, keep=False)),
    ]
    try:
        async with asyncio.timeout(timeout):
            await proc.wait()
            _, still_reading = await asyncio.wait(pumps, timeout=_DRAIN_SECONDS)
    except TimeoutError:
        await _stop_group(proc)
        await _settle(pumps)
        log.warning("`prisma %s` timed out after %g s; its process group was stopped", action, timeout)
        raise PrismaTimeoutError(
            f"`prisma {action}` did not finish within {timeout:g} s and was stopped"
            " (with every process it started).",
            hint=timeout_hint,
            output_tail=list(output.tail),
        ) from None
    except BaseException:
        # Cancelled (the user gave up, the app is closing): never leave Prisma running behind us.
        await _stop_group(proc)
        await _settle(pumps)
        raise
    if still_reading:
        # Prisma exited but a child it left behind still holds the pipe open: end the group.
        await _stop_group(proc)
        await _settle(pumps)
    for task in pumps:
        failure = task.exception() if task.done() and not task.cancelled() else None
        if failure is not None:
            raise failure.with_traceback(None)  # a reader's frames hold raw output: see the callback below
    if output.callback_error is not None:
        # Its frames held unredacted Prisma output (and the URL): drop them, keep type and message.
        error = output.callback_error.with_traceback(None)
        error.add_note("(raised by the on_output callback of recovery_wizard.recovery.prisma)")
        raise error
    returncode = proc.returncode if proc.returncode is not None else -1
    log.info("`prisma %s` exited with %d", action, returncode)
    return _Completed(
        returncode=returncode,
        stdout=output.stdout.decode("utf-8", errors="replace"),
        tail=list(output.tail),
        engine_line=output.engine_line,
        codes=output.codes,
    )


def _not_found(project: PrismaProject, action: str) -> PrismaNotFoundError:
    manager = _package_manager(project.root)
    return PrismaNotFoundError(
        f"The project has no Prisma CLI at {project.root / 'node_modules' / '.bin' / 'prisma'}: its"
        f" dependencies are not installed, so `prisma {action}` cannot run.",
        hint=_with_commands(
            project,
            f"Install the project's dependencies first (`{manager} install` in its directory), then run:",
            pull=action == "db pull",
        ),
    )


def _rel(path: Path, root: Path) -> str:
    """``path`` as Prisma's ``--schema`` takes it, relative to the app's directory (its cwd)."""
    return os.path.relpath(path, root)


def _require_binary(project: PrismaProject, action: str) -> Path:
    if project.binary is None or not project.binary.exists():
        raise _not_found(project, action)
    return project.binary


def _failure(project: PrismaProject, action: str, done: _Completed) -> PrismaError:
    pull = action == "db pull"
    tail = "\n".join(f"  | {line}" for line in done.tail)
    # A Prisma error code means the engine ran (and reached or tried the database): not a download problem.
    if done.engine_line is not None and not done.codes:
        return PrismaEngineDownloadError(
            f"`prisma {action}` could not start: the Prisma engine could not be downloaded"
            f" ({done.engine_line}). This machine cannot reach Prisma's download server; neither"
            " schema.prisma nor the database was touched.",
            hint=_with_commands(
                project,
                "Prisma downloads its engine on first use. Run these on a machine with internet access, or"
                " after pointing PRISMA_SCHEMA_ENGINE_BINARY (and, for Prisma 6, PRISMA_QUERY_ENGINE_LIBRARY)"
                " at engine files you have:",
                pull=pull,
            ),
            output_tail=done.tail,
            exit_code=done.returncode,
        )
    if pull and "P4001" in done.codes:
        return _empty_error(project, done, said="P4001: the introspected database was empty")
    explained = " ".join(_KNOWN_CODES[code] for code in sorted(done.codes) if code in _KNOWN_CODES)
    if not explained and any("Missing required environment variable" in line for line in done.tail):
        explained = "The Prisma config needs an environment variable that is not set."
    return PrismaFailedError(
        f"`prisma {action}` failed (exit code {done.returncode})."
        + (f" {explained}" if explained else "")
        + (f"\nLast lines of its output:\n{tail}" if tail else " It printed nothing."),
        hint=_with_commands(project, "Fix the cause above, then run:", pull=pull),
        output_tail=done.tail,
        exit_code=done.returncode,
    )


def _empty_error(project: PrismaProject, done: _Completed, *, said: str) -> PrismaPullEmptyError:
    var = project.pull_env_var or "the datasource URL"
    return PrismaPullEmptyError(
        f"`prisma db pull` found no tables ({said}); schema.prisma was left unchanged.",
        hint=_with_commands(
            project,
            f"Check that the restored branch has its tables (psql: \\dt) and that {var} names that database"
            " and schema (?schema=…), then run:",
            pull=True,
        ),
        output_tail=done.tail,
        exit_code=done.returncode,
    )


# --------------------------------------------------------------------------------------------------------
# db pull


@dataclass(frozen=True)
class PullResult:
    """What ``db pull`` brought back. Texts are redacted for display; the file holds Prisma's exact output.

    ``written`` is True when ``schema.prisma`` was rewritten (False with ``write=False`` or no change).
    """

    schema_before: str
    schema_after: str
    diff: str
    models: int
    backup_path: Path
    written: bool
    # What write_pulled needs to write this pull later without running Prisma again: the file, its bytes as
    # read (to refuse if it changed meanwhile) and Prisma's exact output. Hidden: a schema may hold a URL.
    schema_path: Path = field(repr=False, compare=False)
    _read: _Hidden[bytes] = field(repr=False, compare=False)
    _pulled: _Hidden[str] = field(repr=False, compare=False)


def count_models(schema: str) -> int:
    """How many ``model`` blocks a Prisma schema holds."""
    return len(_MODEL_RE.findall(schema))


def clean_printed_schema(text: str) -> str:
    """The schema in ``db pull --print``'s stdout: without colour, CLI chatter or the old version comment."""
    lines = _ANSI_RE.sub("", text).replace("\r\n", "\n").split("\n")
    while lines and (not lines[0].strip() or _CHATTER_RE.match(lines[0])):
        lines.pop(0)
    lines = [line for line in lines if not line.startswith("// introspectionSchemaVersion:")]
    body = "\n".join(lines).rstrip()
    return body + "\n" if body else ""


def _scrub_datasource(after: str, before: str, urls: tuple[str, ...]) -> str | None:
    """Keep the URL out of the file: if the printed datasource holds it (as with ``--url``), put back the
    datasource block of the schema we had. None when the secret is still somewhere else in the text."""
    if not any(url and url in after for url in urls):
        return after
    old = _DATASOURCE_BLOCK_RE.search(before)
    if old is not None:
        after = _DATASOURCE_BLOCK_RE.sub(lambda _m: old.group(0), after, count=1)
    return None if any(url and url in after for url in urls) else after


def _backup(schema_path: Path, data: _Hidden[bytes], backup_dir: Path) -> Path:
    backup_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for attempt in range(100):
        suffix = f".{attempt}" if attempt else ""
        path = backup_dir / f"{schema_path.name}.{stamp}{suffix}.before-db-pull"
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.value)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(path, 0o600)  # the umask can only narrow 0600, but be explicit: a schema may hold a URL
        return path
    raise PrismaError(f"Could not create a backup of {schema_path.name} in {backup_dir}.")


# The schema's temporary copy, when it must sit beside the schema (see _atomic_write): named so that a later
# run knows it as ours and can tell, by the pid in it, whether its writer is gone.
_SIDE_TMP_RE: Final = re.compile(r"^\.(?P<name>.+)\.recovery-wizard-(?P<pid>\d+)-[^.]+\.tmp$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def sweep_stale_temp_files(directory: Path) -> list[Path]:
    """Remove the schema temp files a killed run left in ``directory`` (ours by name, their writer gone)."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            found = _SIDE_TMP_RE.match(entry.name)
            if found is None or not entry.is_file(follow_symlinks=False):
                continue
            if _pid_alive(int(found["pid"])):
                continue
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _atomic_write(
    path: Path, text: _Hidden[str], *, expected: _Hidden[bytes], while_what: str, stage_dir: Path
) -> None:
    """Replace ``path`` with ``text`` by a rename, the temp copy written in ``stage_dir`` first.

    ``stage_dir`` is the run's backup directory inside ``.recovery-wizard/`` (git-ignored): a run killed
    between writing the copy and the rename leaves nothing in the app's tree that ``git add -A`` would take.
    A rename works only within one file system; where the schema lives on another (a symlink elsewhere), the
    copy goes beside the schema under a name that says whose it is, and the next write sweeps it if its
    writer is gone.
    """
    target = path.resolve()  # a symlinked schema: replace the file it points to, not the link
    if target.read_bytes() != expected.value:
        raise PrismaError(
            f"{path} changed {while_what}; it was not overwritten.",
            hint="Review the change, then run `npx --no-install prisma db pull` yourself.",
        )
    mode = stat.S_IMODE(target.stat().st_mode)
    sweep_stale_temp_files(target.parent)
    try:
        _write_then_rename(target, text, mode, dir=stage_dir, prefix=f".{target.name}.")
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        prefix = f".{target.name}.recovery-wizard-{os.getpid()}-"
        _write_then_rename(target, text, mode, dir=target.parent, prefix=prefix)
    with contextlib.suppress(OSError):  # make the rename itself durable where the platform allows
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _write_then_rename(target: Path, text: _Hidden[str], mode: int, *, dir: Path, prefix: str) -> None:
    dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=dir)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.value.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _timeout_hint(project: PrismaProject, *, pull: bool) -> str:
    intro = (
        "A Neon compute may still be waking up, or the network is slow. Retry, or add connect_timeout=30 to"
        " the URL and run:"
        if pull
        else "Retry, or run:"
    )
    return _with_commands(project, intro, pull=pull)


async def db_pull(
    project: PrismaProject,
    direct_url: Secret,
    *,
    backup_dir: Path,
    on_output: OutputCallback | None = None,
    write: bool = True,
    timeout: float = 120.0,  # noqa: ASYNC109 - the runbook's API; see _run
) -> PullResult:
    """Introspect the restored database into ``schema.prisma`` (``prisma db pull --print``, then our write).

    ``direct_url`` must be the DIRECT (non-pooled) URL. The schema is backed up to ``backup_dir`` first.
    Raises a :class:`PrismaError` subclass on every failure; ``schema.prisma`` is then left as it was.
    """
    binary = _require_binary(project, "db pull")
    schema_path = project.schema_path
    if schema_path is None or not schema_path.exists():
        raise PrismaError(
            f"No Prisma schema was found in {project.root} (looked for prisma/schema.prisma, schema.prisma,"
            " package.json prisma.schema and the config's schema).",
            hint=_with_commands(project, "Find the schema, then run in the app's directory:", pull=True),
        )
    if schema_path.is_dir():
        raise PrismaError(
            f"The Prisma schema is split over several files ({schema_path}); recovery-wizard only rewrites a"
            " single schema.prisma.",
            hint=_with_commands(project, "Run the pull yourself (Prisma writes each file):", pull=True),
        )
    use_url_flag = _pull_uses_url_flag(project)
    if not use_url_flag and project.pull_env_var is None:
        where = project.config_path.name if project.config_path else schema_path.name
        reason = (
            f"Prisma {project.version} has no --url (it arrived in 7.3)"
            if project.major is not None and project.major >= 7
            else "Prisma < 7 would copy a --url into the schema"
        )
        raise PrismaError(
            f"Cannot point `prisma db pull` at the restored database: {where} does not take its URL from an"
            f" environment variable recovery-wizard can set, and {reason}.",
            hint=_with_commands(
                project,
                f'Make the datasource URL in {where} read an environment variable (e.g. env("DIRECT_URL")),'
                " or set it to the restored direct URL for this pull, then run:",
                pull=True,
            ),
        )

    # Schema texts and secrets stay boxed in _Hidden: no frame on a raise path holds them bare.
    try:
        before_bytes = _Hidden(schema_path.read_bytes())
    except OSError as exc:
        raise PrismaError(f"Could not read {schema_path}: {exc.strerror or exc}.") from None
    before = _Hidden(before_bytes.value.decode("utf-8", errors="replace"))
    backup_path = _backup(schema_path, before_bytes, Path(backup_dir))
    log.info("backed up %s to %s", schema_path, backup_path)

    argv = _Hidden([str(binary), "db", "pull", "--print", "--schema", _rel(schema_path, project.root)])
    if use_url_flag:
        # Visible in `ps` while Prisma runs; only used where the environment cannot do it (see module doc).
        argv.value += ["--url", direct_url.reveal()]
    secrets = _secrets_of(direct_url)
    done = await _run(
        project,
        "db pull",
        argv,
        _child_env(_url_env(project, direct_url), project),
        timeout=timeout,
        on_output=on_output,
        secrets=secrets,
        timeout_hint=_timeout_hint(project, pull=True),
        echo_stdout=False,
    )
    if done.returncode != 0:
        raise _failure(project, "db pull", done)

    models = count_models(clean_printed_schema(done.stdout))
    if models == 0:
        raise _empty_error(project, done, said="it printed no `model` block")
    # Only the whole URL is looked for: a weak password ("postgres") also occurs in `provider = "postgresql"`.
    after = _Hidden(
        _scrub_datasource(clean_printed_schema(done.stdout), before.value, (direct_url.reveal(),))
    )
    if after.value is None:
        raise PrismaFailedError(
            "`prisma db pull` printed a schema containing the database password; it was not written.",
            hint=_with_commands(project, "Run the pull yourself and check the datasource block:", pull=True),
        )
    pulled = _Hidden(after.value)
    shown_before, shown_after = redact(before.value, secrets.value), redact(pulled.value, secrets.value)
    rel = _rel(schema_path, project.root)
    diff = "".join(
        difflib.unified_diff(
            shown_before.splitlines(keepends=True),
            shown_after.splitlines(keepends=True),
            fromfile=f"{rel} (before)",
            tofile=f"{rel} (restored database)",
        )
    )
    result = PullResult(
        schema_before=shown_before,
        schema_after=shown_after,
        diff=redact(diff, secrets.value),
        models=models,
        backup_path=backup_path,
        written=False,
        schema_path=schema_path,
        _read=before_bytes,
        _pulled=pulled,
    )
    return write_pulled(result, while_what="while Prisma ran") if write else result


def write_pulled(result: PullResult, *, while_what: str) -> PullResult:
    """Write the schema a ``db_pull(write=False)`` brought back, once the user has seen its diff.

    No second ``db pull``: the file gets exactly the schema the diff showed. Refused (PrismaError) if
    ``schema.prisma`` changed ``while_what`` (since it was read); a no-op when written already or when the
    pull changed nothing.
    """
    if result.written or result._pulled.value.encode("utf-8") == result._read.value:
        return result
    path = result.schema_path
    try:
        _atomic_write(
            path,
            result._pulled,
            expected=result._read,
            while_what=while_what,
            stage_dir=result.backup_path.parent,
        )
    except OSError as exc:
        raise PrismaError(
            f"Could not write {path}: {exc.strerror or exc}. The backup is at {result.backup_path}."
        ) from None
    log.info("wrote %s (%d models)", path, result.models)
    return dataclasses.replace(result, written=True)


# --------------------------------------------------------------------------------------------------------
# generate


async def generate(
    project: PrismaProject,
    *,
    on_output: OutputCallback | None = None,
    timeout: float = 180.0,  # noqa: ASYNC109 - the runbook's API; see _run
    url: Secret | None = None,
) -> None:
    """``prisma generate`` (needs no database). ``url``, if given, is exposed like in :func:`db_pull`;
    otherwise a config project whose URL variable is unset gets a placeholder (its ``env()`` would throw)."""
    binary = _require_binary(project, "generate")
    # No --schema: generate should find the schema exactly as the app's own build (`prisma generate`) does.
    argv = [str(binary), "generate"]
    if url is not None:
        env = _child_env(_url_env(project, url), project)
    elif project.config_path is not None and project.url_var and not os.environ.get(project.url_var):
        env = _child_env({project.url_var: GENERATE_PLACEHOLDER_URL}, project)
    else:
        env = _child_env({}, project)
    done = await _run(
        project,
        "generate",
        _Hidden(argv),
        env,
        timeout=timeout,
        on_output=on_output,
        secrets=_secrets_of(url),
        timeout_hint=_timeout_hint(project, pull=False),
    )
    if done.returncode != 0:
        raise _failure(project, "generate", done)
