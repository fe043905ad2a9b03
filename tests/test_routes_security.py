"""Settings from env, host allowlist, bearer token and body-size guards of the routes (pure logic)."""

from __future__ import annotations

import pytest
from comfy_trickle.routes.security import HostAllowlist
from comfy_trickle.routes.settings import TrickleSettings
from comfy_trickle.streams.errors import ApiError
from comfy_trickle.streams.limits import DEFAULT_MAX_REQUEST_BYTES, StreamLimits


def test_settings_defaults_without_env():
    settings = TrickleSettings.from_env({})
    assert settings == TrickleSettings(
        token="",
        allowed_hosts=(),
        limits=StreamLimits(max_request_bytes=DEFAULT_MAX_REQUEST_BYTES, max_streams=4),
        dev_relay=True,
    )


def test_settings_from_env():
    settings = TrickleSettings.from_env(
        {
            "COMFY_TRICKLE_TOKEN": " s3cret ",
            "COMFY_TRICKLE_ALLOWED_HOSTS": "Relay.example:8935, 10.0.0.5 ,,",
            "COMFY_TRICKLE_MAX_REQUEST_BYTES": "1024",
            "COMFY_TRICKLE_MAX_STREAMS": "2",
            "COMFY_TRICKLE_DEV_RELAY": "off",
        }
    )
    assert settings.token == "s3cret"
    assert settings.allowed_hosts == ("relay.example:8935", "10.0.0.5")
    assert settings.limits.max_request_bytes == 1024
    assert settings.limits.max_streams == 2
    assert settings.dev_relay is False


@pytest.mark.parametrize("raw", ["lots", "-3", "0"])
def test_malformed_numbers_keep_the_default(raw, caplog):
    settings = TrickleSettings.from_env({"COMFY_TRICKLE_MAX_STREAMS": raw})
    assert settings.limits.max_streams == 4
    assert "COMFY_TRICKLE_MAX_STREAMS" in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8188/x",
        "http://127.8.9.10/x",
        "http://localhost:1/x",
        "http://[::1]:5/x",
        "https://LOCALHOST/x",
    ],
)
def test_loopback_is_allowed_by_default(url):
    assert HostAllowlist().is_allowed(url)


@pytest.mark.parametrize("url", ["http://10.0.0.5/x", "http://example.com/x", "http://0.0.0.0:80/x"])
def test_other_hosts_are_refused_by_default(url):
    assert not HostAllowlist().is_allowed(url)


def test_configured_hosts_and_ports():
    allow = HostAllowlist(["relay.example:8935", "10.0.0.5", "[fd00::1]:443", "plain.example:80"])
    assert allow.is_allowed("http://relay.example:8935/c")
    assert not allow.is_allowed("http://relay.example:8936/c")
    assert allow.is_allowed("http://10.0.0.5:1234/c")
    assert allow.is_allowed("https://[fd00::1]/c")  # https default port 443
    assert not allow.is_allowed("http://[fd00::1]/c")  # http default port 80
    assert allow.is_allowed("http://plain.example/c")


def test_star_allows_any_host():
    assert HostAllowlist(["*"]).is_allowed("http://anything.example:9/x")


def test_check_urls_names_field_and_host():
    with pytest.raises(ApiError) as info:
        HostAllowlist().check_urls(
            {"subscribe_url": "http://127.0.0.1/a", "publish_url": "http://evil.example:81/b"}
        )
    err = info.value
    assert err.http_status == 403
    assert err.details == {"field": "publish_url", "host": "evil.example"}
    assert "'evil.example:81'" in err.message and "COMFY_TRICKLE_ALLOWED_HOSTS" in err.message
