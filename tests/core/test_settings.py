"""Settings: production refuses unsafe defaults; bad values name the variable; pool sizes reach the engine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from vibexp.cli import main
from vibexp.core.config import DEFAULT_SECRET_KEY, Environment, Settings, get_settings
from vibexp.core.runtime import Runtime

SAFE_SECRET = "k" * 32


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """`vibexp` reads its settings once per process (cached); each test sets its own environment."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_production_refuses_the_default_secret_key() -> None:
    with pytest.raises(ValidationError, match="VIBEXP_SECRET_KEY"):
        Settings(environment=Environment.production, secret_key=DEFAULT_SECRET_KEY)


def test_production_refuses_a_short_secret_key() -> None:
    with pytest.raises(ValidationError, match="32\\+ characters"):
        Settings(environment=Environment.production, secret_key="k" * 31)


def test_production_refuses_the_bench_endpoints() -> None:
    with pytest.raises(ValidationError, match="VIBEXP_BENCH_ENDPOINTS"):
        Settings(environment=Environment.production, secret_key=SAFE_SECRET, bench_endpoints=True)


def test_production_with_a_secret_key_is_accepted() -> None:
    assert Settings(environment=Environment.production, secret_key=SAFE_SECRET).secret_key == SAFE_SECRET


def test_allowed_hosts_from_a_comma_separated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIBEXP_MCP_ALLOWED_HOSTS", " api.example.com, vibexp.vibexp.svc:8000 ,")
    assert Settings().mcp_allowed_hosts == ["api.example.com", "vibexp.vibexp.svc:8000"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VIBEXP_DATABASE_POOL_SIZE", "0"),
        ("VIBEXP_DATABASE_MAX_OVERFLOW", "-1"),
        ("VIBEXP_USAGE_FLUSH_INTERVAL", "5"),
        ("VIBEXP_REVOCATION_POLL_INTERVAL", "1"),
        ("VIBEXP_METRICS_PORT", "70000"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(["tenant", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {variable}: "), err
    assert "Traceback" not in err and "pydantic.dev" not in err


def test_the_production_refusal_reads_as_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VIBEXP_ENVIRONMENT", "production")
    monkeypatch.delenv("VIBEXP_SECRET_KEY", raising=False)
    assert main(["serve"]) == 2
    assert capsys.readouterr().err == (
        "error: VIBEXP_SECRET_KEY must be set to a random value of 32+ characters in production\n"
    )


async def test_postgres_pool_size_comes_from_the_settings() -> None:
    # The engine connects lazily: building it against an unused address checks the configuration alone.
    url = "postgresql+asyncpg://nobody:nothing@127.0.0.1:1/none"
    runtime = Runtime.create(Settings(database_url=url, database_pool_size=7, database_max_overflow=3))
    try:
        pool = runtime.engine.pool
        assert (pool.size(), pool._max_overflow) == (7, 3)  # type: ignore[attr-defined]
    finally:
        await runtime.engine.dispose()
