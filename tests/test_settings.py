from __future__ import annotations

from pathlib import Path

import pytest

from relay.registry import default_registry
from relay.settings import ConfigError, Settings

SPECS = default_registry().settings_specs()


def load(env: dict) -> Settings:
    return Settings.from_env(env, platforms=SPECS)


def test_defaults_are_the_embedded_sandbox():
    s = load({})
    assert s.commerce_api_url == "https://api.sequenzy.com"
    assert s.sandbox and s.embedded_redis
    assert s.bind == "127.0.0.1:8000"
    assert s.data_dir == Path("./.relay")
    assert s.admin_token is None
    assert s.secret_for("woocommerce") is None  # disabled until a secret is set


def test_platform_secret_and_options_follow_the_naming_rule():
    s = load({"RELAY_WOOCOMMERCE_SECRET": "abc", "RELAY_WOOCOMMERCE_CURRENCY": "EUR"})
    assert s.secret_for("woocommerce") == "abc"
    assert s.options_for("woocommerce") == {"currency": "EUR"}


def test_secret_from_file(tmp_path):
    secret = tmp_path / "key"
    secret.write_text("sk_live_123\n")
    s = load({"RELAY_COMMERCE_API_KEY_FILE": str(secret)})
    assert s.commerce_api_key == "sk_live_123"
    assert not s.sandbox


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"RELAY_BIND": "8000"}, "RELAY_BIND"),
        ({"RELAY_BIND": "localhost:99999"}, "RELAY_BIND"),
        ({"RELAY_WORKER_METRICS_BIND": "9102"}, "RELAY_WORKER_METRICS_BIND"),
        ({"RELAY_COMMERCE_API_URL": "ftp://x"}, "RELAY_COMMERCE_API_URL"),
        ({"RELAY_REDIS_URL": "http://:hunter2@x"}, "RELAY_REDIS_URL"),
        ({"RELAY_MAX_BODY_BYTES": "lots"}, "RELAY_MAX_BODY_BYTES"),
        ({"RELAY_RETRY_MAX_ATTEMPTS": "0"}, "RELAY_RETRY_MAX_ATTEMPTS"),
        ({"RELAY_REDIS_FSYNC": "sometimes"}, "RELAY_REDIS_FSYNC"),
        ({"RELAY_HEALTHZ_GRACE_SECONDS": "0"}, "RELAY_HEALTHZ_GRACE_SECONDS"),
        ({"RELAY_DLQ_RETENTION_DAYS": "0"}, "RELAY_DLQ_RETENTION_DAYS"),
        ({"RELAY_DLQ_MAX": "many"}, "RELAY_DLQ_MAX"),
        ({"RELAY_COMMERCE_API_KEY_FILE": "/nonexistent/key"}, "RELAY_COMMERCE_API_KEY_FILE"),
        ({"RELAY_ADMIN_TOKEN": "a", "RELAY_ADMIN_TOKEN_FILE": "/x"}, "RELAY_ADMIN_TOKEN"),
    ],
)
def test_bad_values_name_the_variable_in_one_line(env, names):
    with pytest.raises(ConfigError) as error:
        load(env)
    message = str(error.value)
    assert message.startswith(names)
    assert "\n" not in message


def test_redis_url_password_is_not_echoed():
    with pytest.raises(ConfigError) as error:
        load({"RELAY_REDIS_URL": "http://:hunter2@redis:6379"})
    assert "hunter2" not in str(error.value)


def test_empty_file_secret_is_an_error(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        load({"RELAY_WOOCOMMERCE_SECRET_FILE": str(empty)})


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"RELAY_WOOCOMMERCE_CURRENCY": "euro"}, "RELAY_WOOCOMMERCE_CURRENCY"),
        ({"RELAY_CHECKOUTCHAMP_TIMEZONE": "Mars/Olympus"}, "RELAY_CHECKOUTCHAMP_TIMEZONE"),
    ],
)
def test_mapper_options_are_checked_at_start(env, variable):
    with pytest.raises(ConfigError, match=f"^{variable}: expected"):
        load(env)
    assert load({"RELAY_STICKYIO_TIMEZONE": "Europe/Paris"}).options_for("stickyio") == {
        "timezone": "Europe/Paris"
    }


def test_issue13_each_value_of_a_rotated_token_must_be_strong():
    """Issue 13: a token setting may hold several values during a rotation; the weak-token
    check applies to each, and the error says which by position, never by its text."""
    strong = "0b9c1e7f3a5d48e2a6c4"
    for variable in ("RELAY_CHECKOUTCHAMP_TOKEN", "RELAY_STICKYIO_TOKEN"):
        assert load({variable: f"{strong} {strong[::-1]}"}).platform_secrets
        with pytest.raises(ConfigError) as error:
            load({variable: f"{strong} abc"})
        assert str(error.value).startswith(f"{variable}: value 2 of 2: use at least 16")
        assert "abc" not in str(error.value) and strong not in str(error.value)


def test_issue13_company_id_is_read_and_must_fit_a_header():
    assert load({}).commerce_company_id is None
    assert load({"RELAY_COMMERCE_COMPANY_ID": " comp_123 "}).commerce_company_id == "comp_123"
    for bad in ("two words", "x" * 256, "caf\u00e9"):
        with pytest.raises(ConfigError) as error:
            load({"RELAY_COMMERCE_COMPANY_ID": bad})
        assert str(error.value).startswith("RELAY_COMMERCE_COMPANY_ID: ")
        assert len(str(error.value).splitlines()) == 1


# --- RELAY_STOREFRONT_ORIGINS -------------------------------------------------------------


def test_storefront_origins_are_kept_as_browsers_send_them():
    assert load({}).storefront_origins == ()  # unset: the storefront endpoints are off
    s = load(
        {
            "RELAY_STOREFRONT_ORIGINS": " https://Shop.Example.com  http://localhost:8080 "
            "https://shop.example.com:443 https://shop.example.com/ https://bücher.de"
        }
    )
    # A browser's Origin is lower case and omits the default port: so are these, once each.
    assert s.storefront_origins == (
        "https://shop.example.com",
        "http://localhost:8080",
        "https://xn--bcher-kva.de",
    )


@pytest.mark.parametrize(
    "value",
    [
        "*",
        "shop.example.com",
        "https://*.example.com",
        "https://shop.example.com/product/1",
        "https://shop.example.com?x=1",
        "https://user@shop.example.com",
        "ftp://shop.example.com",
        "https://shop.example.com:99999",
        "https://shop.example.com null",
    ],
)
def test_a_storefront_origin_that_could_never_match_stops_start_up(value):
    with pytest.raises(ConfigError) as error:
        load({"RELAY_STOREFRONT_ORIGINS": value})
    message = str(error.value)
    assert message.startswith("RELAY_STOREFRONT_ORIGINS: ")
    assert "scheme://host[:port]" in message
    assert "\n" not in message


# --- a platform's store API (relay sync, reconcile, webhook health) -------------------------


def _store_env(**extra: str) -> dict[str, str]:
    return {
        "RELAY_WOOCOMMERCE_STORE_URL": "https://shop.example.com/",
        "RELAY_WOOCOMMERCE_CONSUMER_KEY": "ck_1",
        "RELAY_WOOCOMMERCE_CONSUMER_SECRET": "cs_1",
        **extra,
    }


def test_a_store_api_is_read_from_its_platforms_settings_secrets_also_from_files(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("cs_from_file\n")
    env = _store_env(RELAY_WOOCOMMERCE_MAX_RPS="0.5", RELAY_RECONCILE_INTERVAL="1h")
    del env["RELAY_WOOCOMMERCE_CONSUMER_SECRET"]
    env["RELAY_WOOCOMMERCE_CONSUMER_SECRET_FILE"] = str(secret)
    settings = Settings.from_env(env, platforms=default_registry().settings_specs())
    store = settings.store_for("woocommerce")
    assert store is not None
    assert store.url == "https://shop.example.com"
    assert dict(store.credentials) == {"consumer_key": "ck_1", "consumer_secret": "cs_from_file"}
    assert store.max_rps == 0.5
    assert settings.reconcile_interval_seconds == 3600
    assert "cs_from_file" not in repr(store) and "ck_1" not in repr(store)


def test_without_store_settings_the_relay_is_push_only_as_before():
    settings = Settings.from_env({}, platforms=default_registry().settings_specs())
    assert settings.stores == {}
    assert settings.reconcile_interval_seconds == 15 * 60


@pytest.mark.parametrize(
    ("env", "names"),
    [
        (
            {"RELAY_WOOCOMMERCE_STORE_URL": "https://shop.example.com"},
            "RELAY_WOOCOMMERCE_CONSUMER_KEY",
        ),
        (_store_env(RELAY_WOOCOMMERCE_STORE_URL="ftp://shop"), "RELAY_WOOCOMMERCE_STORE_URL"),
        (_store_env(RELAY_WOOCOMMERCE_STORE_URL="https://u:p@shop"), "RELAY_WOOCOMMERCE_STORE_URL"),
        (_store_env(RELAY_WOOCOMMERCE_MAX_RPS="fast"), "RELAY_WOOCOMMERCE_MAX_RPS"),
        (_store_env(RELAY_RECONCILE_INTERVAL="soon"), "RELAY_RECONCILE_INTERVAL"),
    ],
)
def test_bad_store_settings_name_the_variable_in_one_line(env, names):
    with pytest.raises(ConfigError) as error:
        Settings.from_env(env, platforms=default_registry().settings_specs())
    message = str(error.value)
    assert message.startswith(names) and "\n" not in message
    assert "u:p@" not in message  # a URL with credentials is not echoed
