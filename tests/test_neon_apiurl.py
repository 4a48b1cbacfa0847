"""The API URL: where the key may go, how the URL is shown, and a 404 that blames the URL, not the ids."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import httpx
import pytest
import respx

from recovery_wizard.neon import NeonClient, NotFoundError, RetryPolicy
from recovery_wizard.neon.apiurl import check_api_url, display_url, is_loopback
from recovery_wizard.neon.errors import BadAPIURLError

KEY = "napi_apiurl_test_key_0123456789abcdef"


@pytest.mark.parametrize(
    "url",
    [
        "https://console.neon.tech/api/v2",
        "https://neon.internal.example:8443/api/v2",
        "http://127.0.0.1:8080/api/v2",
        "http://127.9.9.9/api/v2",
        "http://localhost:3000/api/v2",
        "http://LOCALHOST./api/v2",
        "http://[::1]:9000/api/v2",
        "http://[::ffff:127.0.0.1]/api/v2",
    ],
)
def test_the_key_may_go_over_https_or_to_this_machine(url: str) -> None:
    assert check_api_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://console.neon.tech/api/v2",
        "http://10.0.0.5/api/v2",
        "http://192.168.1.20:8080/api/v2",
        "http://[2001:db8::1]/api/v2",
        "http://localhost.evil.example/api/v2",
        "http://127.0.0.1.nip.io/api/v2",
        "http://0.0.0.0/api/v2",
    ],
)
def test_plain_http_off_this_machine_is_refused(url: str) -> None:
    with pytest.raises(BadAPIURLError) as refused:
        check_api_url(url)
    assert "plain http://" in str(refused.value)
    assert "https://" in refused.value.hint


@pytest.mark.parametrize(
    "url", ["ftp://console.neon.tech/api/v2", "console.neon.tech/api/v2", "https://x:port/"]
)
def test_other_schemes_and_broken_urls_are_refused(url: str) -> None:
    with pytest.raises(BadAPIURLError):
        check_api_url(url)


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("10.0.0.1") and not is_loopback("example.com") and not is_loopback("")


def test_display_url_masks_the_password() -> None:
    assert display_url("https://proxyuser:s3cret-pw@proxy.example/api/v2") == (
        "https://proxyuser:****@proxy.example/api/v2"
    )
    assert display_url("https://console.neon.tech/api/v2") == "https://console.neon.tech/api/v2"
    assert "s3cret" not in repr(
        NeonClient(httpx.AsyncClient(), KEY, base_url="https://u:s3cret-pw@proxy.example/api/v2")
    )


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEON_")}
    env["NEON_API_KEY"] = KEY
    return subprocess.run(
        [sys.executable, "-m", "recovery_wizard", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_refuses_plain_http_to_another_host_before_sending_anything() -> None:
    # `.invalid` never resolves: without the refusal the CLI would try to send the key there.
    result = _cli("branches", "--json", "--api-url", "http://neon-proxy.invalid/api/v2")
    assert result.returncode == 2, result.stderr
    assert "plain http://" in result.stderr
    assert '"status": "refused"' in result.stdout
    assert KEY not in result.stdout + result.stderr


async def test_a_404_for_a_url_without_api_v2_blames_the_url() -> None:
    with respx.mock(base_url="https://console.neon.tech", assert_all_called=True) as router:
        router.get("/projects/wild-fire-123").mock(
            return_value=httpx.Response(
                404, text="404 page not found", headers={"Content-Type": "text/plain"}
            )
        )
        async with httpx.AsyncClient() as http:
            client = NeonClient(
                http, KEY, base_url="https://console.neon.tech", retry=RetryPolicy(max_attempts=1)
            )
            with pytest.raises(NotFoundError) as info:
                await client.project("wild-fire-123")
    assert "/api/v2" in info.value.hint
    assert "probably missing" in info.value.hint
    assert "project" not in info.value.hint.split("missing")[0].lower()


async def test_neons_own_404_still_points_at_the_ids() -> None:
    with respx.mock(base_url="https://console.neon.tech/api/v2", assert_all_called=True) as router:
        router.get("/projects/wild-fire-123").mock(
            return_value=httpx.Response(404, json={"code": "", "message": "project not found"})
        )
        async with httpx.AsyncClient() as http:
            client = NeonClient(http, KEY, retry=RetryPolicy(max_attempts=1))
            with pytest.raises(NotFoundError) as info:
                await client.project("wild-fire-123")
    assert "project and branch ids" in info.value.hint


@pytest.mark.parametrize(
    "args",
    [
        ("restore", KEY),  # the key pasted where --api-key was meant
        (KEY,),  # taken for a command name
        ("restore", "--strategy", KEY),  # taken for an option's value
        ("branches", "--json", "ghp_0123456789abcdefABCDEF0123456789"),
    ],
)
def test_a_stray_key_is_never_echoed_by_a_usage_error(args: tuple[str, ...]) -> None:
    result = _cli(*args)
    assert result.returncode == 2, result.stderr
    assert "Error:" in result.stderr and "****" in result.stderr
    assert args[-1] not in result.stdout + result.stderr


def test_ordinary_usage_errors_still_say_what_was_typed() -> None:
    result = _cli("restore", "35", "minutes", "ago")
    assert result.returncode == 2
    assert "unexpected extra arguments (35 minutes ago)" in result.stderr


def _client_kwargs(monkeypatch: pytest.MonkeyPatch, base_url: str) -> dict[str, Any]:
    from recovery_wizard.neon.transport import http_client

    made: list[dict[str, Any]] = []
    monkeypatch.setattr(httpx, "AsyncClient", lambda **kwargs: made.append(kwargs))
    http_client(base_url, headers={"User-Agent": "t"})
    return made[0]


def test_a_plain_http_api_gets_a_tls_context_that_trusts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Building httpx's default context (certifi's roots) costs 20-70 ms the sandbox's http:// never uses;
    # the one given instead refuses every certificate, so nothing could go out unverified through it.
    import ssl

    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    context = _client_kwargs(monkeypatch, "http://127.0.0.1:8080/api/v2")["verify"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 0


@pytest.mark.parametrize(
    ("url", "proxy"),
    [
        ("https://console.neon.tech/api/v2", None),
        ("http://127.0.0.1:8080/api/v2", "https://proxy.example:3128"),
    ],
)
def test_https_or_a_proxy_keeps_httpx_own_tls_context(
    monkeypatch: pytest.MonkeyPatch, url: str, proxy: str | None
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    if proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy)
    kwargs = _client_kwargs(monkeypatch, url)
    assert "verify" not in kwargs
    assert kwargs["timeout"].connect == 10.0 and kwargs["timeout"].read == 30.0


def test_a_missing_sniffio_fails_httpcores_lookups_at_once_and_an_installed_one_is_left_alone() -> None:
    # httpcore looks sniffio up per lock; missing, each lookup searched sys.path again (0.1-0.4 ms, ~80 a run).
    code = (
        "import importlib.util, sys\n"
        "installed = importlib.util.find_spec('sniffio') is not None\n"
        "import recovery_wizard.neon.transport\n"
        "blocked = 'sniffio' in sys.modules and sys.modules['sniffio'] is None\n"
        "from httpcore._synchronization import current_async_library\n"
        "import asyncio\n"
        "async def main():\n"
        "    return current_async_library()\n"
        "print(installed, blocked, asyncio.run(main()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out in (["False", "True", "asyncio"], ["True", "False", "asyncio"])
