"""`vibexp serve --workers`: a bad count is refused with a clear message before anything starts."""

from __future__ import annotations

import pytest

from vibexp.cli import main


@pytest.mark.parametrize("value", ["0", "65", "two", "-1"])
def test_serve_refuses_a_bad_worker_count(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--workers", value])
    assert exited.value.code == 2
    assert "--workers" in capsys.readouterr().err


def test_workers_default_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from vibexp.cli import build_parser

    monkeypatch.setenv("VIBEXP_WORKERS", "3")
    assert build_parser().parse_args(["serve"]).workers == 3
    monkeypatch.delenv("VIBEXP_WORKERS")
    assert build_parser().parse_args(["serve"]).workers == 1
