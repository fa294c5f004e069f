"""The embedded redis-server of `relay run`: real binary, append-only data that survives."""

from __future__ import annotations

import os
import stat

import pytest
from redis import Redis

from relay.runtime.embedded_redis import EmbeddedRedis, running_url
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


def test_f17_data_files_are_private_under_umask_022(tmp_path):
    """Review F17: under the usual umask 022 the data directory was 0755 and dump.rdb,
    appendonlydir/* and redis.log 0644: every event, customer email and the admin session
    secret readable by any local user. A directory an older relay left open is closed too."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "redis.log").write_text("an older relay's log\n")
    (data / "redis.log").chmod(0o644)
    old_umask = os.umask(0o022)
    try:
        with EmbeddedRedis(data) as server:
            client = Redis.from_url(server.url)
            client.set("relay:admin:secret", "s")
            client.save()  # dump.rdb, as Redis writes it on its own schedule
            written = [data, data / "dump.rdb", data / "redis.log", data / "redis.conf"]
            aof = data / "appendonlydir"
            written += [aof, *aof.iterdir()] if aof.is_dir() else [data / "relay.aof"]
            modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in written}
    finally:
        os.umask(old_umask)
    assert len(modes) >= 6, modes
    assert {name: mode for name, mode in modes.items() if mode & 0o077} == {}
    assert modes["data"] == 0o700 and modes["dump.rdb"] == 0o600
