"""The embedded redis-server of `relay run`: real binary, append-only data that survives."""

from __future__ import annotations

import pytest
from redis import Redis

from relay.embedded_redis import EmbeddedRedis, running_url
from relay.settings import ConfigError


def test_data_survives_a_restart_and_the_url_is_published(tmp_path):
    data = tmp_path / "data"
    with EmbeddedRedis(data) as server:
        assert server.url.startswith("unix://")
        assert running_url(data) == server.url
        Redis.from_url(server.url).set("accepted-event", "1")
    assert running_url(data) is None
    assert (data / "relay.aof").exists() or (data / "appendonlydir").exists()
    with EmbeddedRedis(data) as again:
        assert Redis.from_url(again.url).get("accepted-event") == b"1"
        assert Redis.from_url(again.url).config_get("appendfsync")["appendfsync"] == "always"


def test_a_second_server_on_the_same_data_is_refused(tmp_path):
    with EmbeddedRedis(tmp_path) as _, pytest.raises(ConfigError, match="already runs"):
        EmbeddedRedis(tmp_path).start()


def test_long_data_dir_falls_back_to_loopback_with_a_password(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with EmbeddedRedis(deep) as server:
        assert server.url.startswith("redis://:")
        assert "@127.0.0.1:" in server.url
        assert Redis.from_url(server.url).ping()
        url_file = deep / "redis.url"
        assert url_file.stat().st_mode & 0o077 == 0  # it holds the password
