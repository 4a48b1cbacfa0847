"""The one secrets helper: URL masking, Secret, free-text scrubbing, log records."""

from __future__ import annotations

import json
import logging
import pickle
import string
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recovery_wizard.redact import MASK, RedactingFilter, Secret, install_log_redaction, mask_url, redact


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            "postgresql://alex:s3cr3t@ep-odd-lake-123.us-east-2.aws.neon.tech/neondb?sslmode=require",
            "postgresql://alex:****@ep-odd-lake-123.us-east-2.aws.neon.tech/neondb?sslmode=require",
        ),
        ("postgres://u:p%40ss@h:5432/db", "postgres://u:****@h:5432/db"),
        ("postgres://u:p@ss@h/db", "postgres://u:****@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        (
            "postgresql://h/db?user=u&password=hunter22&sslmode=disable",
            "postgresql://h/db?user=u&password=****&sslmode=disable",
        ),
        ("host=h user=u password=hunter22 dbname=d", "host=h user=u password=**** dbname=d"),
        ("host=h password='a b c' dbname=d", "host=h password=**** dbname=d"),
        ("POSTGRESQL://U:Secret99@H/D", "POSTGRESQL://U:****@H/D"),
        (
            "prisma+postgres://u:tok3nvalue@accelerate.prisma-data.net/",
            "prisma+postgres://u:****@accelerate.prisma-data.net/",
        ),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_mask_urls_inside_text() -> None:
    text = 'DATABASE_URL="postgresql://a:pw111111@h1/db" and DIRECT_URL=postgres://b:pw222222@h2/db\n'
    assert redact(text) == 'DATABASE_URL="postgresql://a:****@h1/db" and DIRECT_URL=postgres://b:****@h2/db\n'


_password_chars = string.ascii_letters + string.digits + "!$%&()*+,-.;<=>[]^_{|}~@:/?#'\""


@given(
    user=st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12),
    password=st.text(alphabet=_password_chars, min_size=8, max_size=40),
)
def test_masked_url_never_holds_the_password(user: str, password: str) -> None:
    url = f"postgresql://{user}:{quote(password, safe='')}@ep-x.neon.tech/neondb?sslmode=require"
    assert mask_url(url) == f"postgresql://{user}:{MASK}@ep-x.neon.tech/neondb?sslmode=require"


def test_secret_shows_only_a_mask() -> None:
    key = Secret("napi_abcdefghijklmnop0123456789")
    shown = f"{key} {key!r} {key:>40} {[key]} {key.masked}"
    assert "napi_abcdef" not in shown
    assert key.reveal() == "napi_abcdefghijklmnop0123456789"
    assert Secret(key) == key and bool(key)
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(key)


def test_secret_url_shows_host_but_not_password() -> None:
    uri = Secret("postgresql://neondb_owner:npg_AbCdEf123@ep-odd-lake.neon.tech/neondb")
    assert str(uri) == "postgresql://neondb_owner:****@ep-odd-lake.neon.tech/neondb"
    # Its password alone is now scrubbed from any text, e.g. a driver's error message.
    assert redact('FATAL: password "npg_AbCdEf123" rejected') == 'FATAL: password "****" rejected'


def test_redact_scrubs_every_wrapped_secret_and_extras() -> None:
    Secret("napi_zzzzzzzzzzzzzzzzzzzz")
    assert redact("key=napi_zzzzzzzzzzzzzzzzzzzz!") == f"key={MASK}!"
    assert redact("my pin is 4242424242", extra=["4242424242"]) == f"my pin is {MASK}"
    assert redact("short xy stays", extra=["xy"]) == "short xy stays"


def test_logging_filter_scrubs_messages_args_and_tracebacks() -> None:
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    logger = logging.getLogger("test.redact")
    logger.propagate = False
    handler = Keep()
    logger.addHandler(handler)
    install_log_redaction(logger)
    install_log_redaction(logger)  # idempotent
    assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    secret = Secret("napi_loglogloglogloglog")
    try:
        raise RuntimeError(f"could not use {secret.reveal()} on postgresql://u:pw987654@h/db")
    except RuntimeError:
        logger.exception("failed with %s", secret.reveal())
    logger.removeHandler(handler)
    assert records
    text = "\n".join(records)
    assert "napi_loglog" not in text and "pw987654" not in text
    assert "RuntimeError" in text and "postgresql://u:****@h/db" in text


@pytest.mark.parametrize("raw", ["pa/ss", "pa#ss", "pa'ss", "p@ss", "pa?ss", "pa ss", "a:b/c#d'e@f"])
def test_mask_url_masks_a_password_that_is_not_percent_encoded(raw: str) -> None:
    url = f"postgresql://alex:{raw}-planted@ep-x.neon.tech/neondb?sslmode=require"
    assert mask_url(url) == "postgresql://alex:****@ep-x.neon.tech/neondb?sslmode=require"
    assert "planted" not in str(Secret(url))


_raw_password = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\n\r"),
    min_size=1,
    max_size=40,
)


@given(user=st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12), password=_raw_password)
def test_mask_url_never_holds_a_raw_password(user: str, password: str) -> None:
    url = f"postgresql://{user}:Qz7{password}@ep-x.neon.tech/neondb?sslmode=require"
    assert mask_url(url) == f"postgresql://{user}:{MASK}@ep-x.neon.tech/neondb?sslmode=require"


@given(password=st.text(alphabet=_password_chars.replace('"', ""), min_size=1, max_size=40))
def test_redact_masks_a_raw_password_inside_text(password: str) -> None:
    # In free text a blank, a double quote, a backslash or a backtick ends a URL (they quote or escape the
    # text around it); any other character a hand-written password holds is masked with it.
    text = f"connect failed for DATABASE_URL='postgresql://app:Qz7{password}@ep-x.neon.tech/db' (timeout)"
    assert "Qz7" not in redact(text)


@given(
    password=st.text(alphabet=_password_chars.replace('"', ""), min_size=1, max_size=20),
    other=st.text(min_size=0, max_size=20),
    compact=st.booleans(),
)
def test_redact_keeps_json_valid(password: str, other: str, compact: bool) -> None:
    payload = {
        "error": f"could not connect to postgresql://app:Qz7{password}@h/db",
        "url": "redis://h:6379/0",
        "next": f"{other}@{other}:x",
        "diff": "-A=1\n+postgresql://u:p@h/db\nuser:x@y",
    }
    text = json.dumps(payload, separators=(",", ":") if compact else None)
    decoded = json.loads(redact(text))
    assert set(decoded) == set(payload) and "Qz7" not in decoded["error"]


@pytest.mark.parametrize(
    "url",
    [
        "redis://:Qz7redis@redis.internal:6379",
        "mongodb+srv://app:Qz7mongo@cluster0.x.mongodb.net/db",
        "amqp://app:Qz7amqp@rabbit:5672/vhost",
        "https://app:Qz7basic@api.example.com/v2",
        "redis://:Qz7p@ss@redis.internal:6379",
    ],
)
def test_redact_masks_passwords_in_urls_of_any_scheme(url: str) -> None:
    masked = redact(f"could not reach {url}: refused")
    assert "Qz7" not in masked and MASK in masked


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            "postgresql://app:Qz7p/w@h/db?sslmode=require&application_name=me@corp",
            "postgresql://app:****@corp",
        ),
        ("postgresql://app:Qz7a@b?c=d@h/db", "postgresql://app:****@h/db"),
    ],
)
def test_mask_url_masks_too_much_rather_than_too_little_around_at_signs(url: str, masked: str) -> None:
    # The last '@' ends the userinfo: an '@' in the query hides the host (too much), never a password.
    assert mask_url(url) == masked
    assert "Qz7" not in mask_url(url)
