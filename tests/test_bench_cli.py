"""`python -m bench`'s command line (the measurements themselves run in bench/, not here)."""

from __future__ import annotations

import pytest

from bench.__main__ import main


@pytest.mark.parametrize("item", ["RELAY_WEB_WORKERS", "=2"])
def test_an_env_item_without_a_name_and_value_is_refused_before_anything_runs(
    item, tmp_path, capsys
):
    report = tmp_path / "bench.json"
    with pytest.raises(SystemExit) as exit_:
        main(["ingest", "--env", item, "--json", str(report)])
    assert exit_.value.code == 2
    assert "expected NAME=VALUE" in capsys.readouterr().err
    assert not report.exists()
