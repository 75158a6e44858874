"""Settings: production refuses unsafe defaults; bad values name the variable; pool sizes reach every engine (the
API's, the operator's, the CLI's); the API server's own settings live outside the shared ones."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from vibexp.api.settings import DEFAULT_SECRET_KEY, ApiSettings, get_api_settings
from vibexp.cli import main
from vibexp.core.config import Environment, Settings, get_settings
from vibexp.core.db import Database
from vibexp.core.runtime import Runtime

SAFE_SECRET = "k" * 32


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """`vibexp` reads its settings once per process (cached); each test sets its own environment."""
    get_settings.cache_clear()
    get_api_settings.cache_clear()
    yield
    get_settings.cache_clear()
    get_api_settings.cache_clear()


def test_production_refuses_the_default_secret_key() -> None:
    with pytest.raises(ValidationError, match="VIBEXP_SECRET_KEY"):
        ApiSettings(environment=Environment.production, secret_key=DEFAULT_SECRET_KEY)


def test_production_refuses_a_short_secret_key() -> None:
    with pytest.raises(ValidationError, match="32\\+ characters"):
        ApiSettings(environment=Environment.production, secret_key="k" * 31)


def test_production_refuses_the_bench_endpoints() -> None:
    with pytest.raises(ValidationError, match="VIBEXP_BENCH_ENDPOINTS"):
        ApiSettings(environment=Environment.production, secret_key=SAFE_SECRET, bench_endpoints=True)


def test_production_with_a_secret_key_is_accepted() -> None:
    assert ApiSettings(environment=Environment.production, secret_key=SAFE_SECRET).secret_key == SAFE_SECRET


def test_allowed_hosts_from_a_comma_separated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIBEXP_MCP_ALLOWED_HOSTS", " api.example.com, vibexp.vibexp.svc:8000 ,")
    assert ApiSettings().mcp_allowed_hosts == ["api.example.com", "vibexp.vibexp.svc:8000"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VIBEXP_DATABASE_POOL_SIZE", "0"),
        ("VIBEXP_DATABASE_MAX_OVERFLOW", "-1"),
        ("VIBEXP_DATABASE_HOT_CONNECTIONS", "-1"),
        ("VIBEXP_USAGE_FLUSH_INTERVAL", "5"),
        ("VIBEXP_REVOCATION_POLL_INTERVAL", "1"),
        ("VIBEXP_METRICS_PORT", "70000"),
        ("VIBEXP_MAX_BODY_BYTES", "10"),
        ("VIBEXP_KEY_CACHE_TTL", "0"),
        ("VIBEXP_KEY_POLICY_INTERVAL", "0"),
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


# The engine connects lazily: building one against an unused address checks the configuration alone.
UNUSED_POSTGRES = "postgresql+asyncpg://nobody:nothing@127.0.0.1:1/none"


def _pool(database: Database) -> tuple[int, int]:
    pool = database.engine.pool
    return pool.size(), pool._max_overflow  # type: ignore[attr-defined]


async def test_database_from_settings_applies_the_pool_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIBEXP_DATABASE_URL", UNUSED_POSTGRES)
    monkeypatch.setenv("VIBEXP_DATABASE_POOL_SIZE", "9")
    monkeypatch.setenv("VIBEXP_DATABASE_MAX_OVERFLOW", "4")
    database = Database.from_settings(Settings())
    try:
        assert _pool(database) == (9, 4)
        async with database.session_factory() as session:
            assert session.bind is database.engine
    finally:
        await database.dispose()


async def test_the_operators_engine_honours_the_pool_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's start-up handler (the one `vibexp operator` runs) builds its engine from the same settings."""
    import kopf

    from vibexp.operator.handlers import register
    from vibexp.operator.metrics import OperatorMetrics
    from vibexp.operator.runtime import runtime_of
    from vibexp.operator.settings import OperatorConfig

    settings = Settings(database_url=UNUSED_POSTGRES, database_pool_size=7, database_max_overflow=3, auto_migrate=False)
    registry = kopf.OperatorRegistry()
    config = OperatorConfig(metrics_port=0, health_port=0)
    register(registry, settings=settings, config=config, metrics=OperatorMetrics(), namespaces=["default"])

    async def no_cluster(**_: object) -> object:  # this test is about the engine; no kubeconfig exists here
        return None

    monkeypatch.setattr("vibexp.operator.handlers.KubeClient.connect", no_cluster)
    (startup,) = [h for h in registry._activities.get_all_handlers() if h.id == "startup"]
    memo = kopf.Memo()
    await startup.fn(settings=kopf.OperatorSettings(), memo=memo)
    runtime = runtime_of(memo)
    try:
        assert (runtime.engine.pool.size(), runtime.engine.pool._max_overflow) == (7, 3)  # type: ignore[attr-defined]
    finally:
        await runtime.engine.dispose()


def test_the_cli_opens_the_database_with_the_pool_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """`vibexp tenant list` goes through Database.from_settings: a pool size the engine refuses fails the command."""
    opened: list[tuple[int, int]] = []
    real = Database.from_settings

    def spy(settings: Settings) -> Database:
        database = real(settings)
        opened.append(_pool(database))
        return database

    monkeypatch.setattr(Database, "from_settings", spy)
    monkeypatch.setenv("VIBEXP_DATABASE_URL", UNUSED_POSTGRES)
    monkeypatch.setenv("VIBEXP_DATABASE_POOL_SIZE", "5")
    monkeypatch.setenv("VIBEXP_DATABASE_MAX_OVERFLOW", "2")
    # Nothing listens on port 1: the CLI really used this engine (and says so in one line, exit 1).
    assert main(["tenant", "list"]) == 1
    assert opened == [(5, 2)]


def test_api_only_settings_are_not_shared_settings() -> None:
    """The operator and the CLI's database commands read the shared settings; the API server's are its own."""
    api_only = {
        "max_body_bytes",
        "mcp_allowed_hosts",
        "mcp_allowed_origins",
        "metrics_port",
        "metrics_host",
        "metrics_on_main_port",
        "secure_cookies",
        "bench_endpoints",
    }
    assert api_only <= set(ApiSettings.model_fields)
    assert not api_only & set(Settings.model_fields)
    assert set(Settings.model_fields) < set(ApiSettings.model_fields)  # every shared setting reaches the API too


def test_api_settings_keep_the_variable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIBEXP_METRICS_PORT", "9464")
    monkeypatch.setenv("VIBEXP_SECURE_COOKIES", "true")
    monkeypatch.setenv("VIBEXP_MAX_BODY_BYTES", "4096")
    monkeypatch.setenv("VIBEXP_DATABASE_POOL_SIZE", "3")
    settings = ApiSettings()
    assert (settings.metrics_port, settings.secure_cookies, settings.max_body_bytes) == (9464, True, 4096)
    assert settings.database_pool_size == 3
