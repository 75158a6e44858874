"""Schemathesis fuzzes every operation of ``/openapi.json`` on a real ``vibexp serve`` with a valid key.

It must find no 5xx and no response that contradicts the schema (undocumented status, wrong body, wrong content
type or headers), for schema-valid input (positive mode) and schema-invalid input (negative mode). The run is
bounded: ``FUZZ_EXAMPLES`` cases per operation and mode, no shrinking (a failure names the exact request as curl).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import Account, make_account
from helpers.servers import LiveServer
from vibexp.core.tenants.models import Tier

pytestmark = pytest.mark.slow

#: Cases per operation and generation mode; VIBEXP_FUZZ_EXAMPLES raises it for a deeper run by hand.
FUZZ_EXAMPLES = int(os.environ.get("VIBEXP_FUZZ_EXAMPLES", "10"))

#: Responses a schema-valid request may legitimately get besides 2xx, and why:
#: 409 a generated name/slug is taken; 404 a generated id does not exist; 412 a generated If-Match is not the
#: current ETag; 422 a generated cursor is not one the server issued (cursors are opaque by contract), or a rule
#: the schema cannot express (an expiry already past, rotating a key that is revoked). 5xx is never acceptable.
POSITIVE_EXPECTED = ["2xx", "401", "403", "404", "409", "412", "422", "429"]

#: Refusals of schema-invalid requests: schemathesis' defaults plus 413 (an over-long field can exceed the body
#: limit, which is refused before validation) and minus 5xx (a server error is never an acceptable refusal).
NEGATIVE_EXPECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]

# POST /api/v1/import takes JSON Lines as its raw body: generated strings are sent as they are, like text/plain.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


def _config(key: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "auth": {"openapi": {"HTTPBearer": {"bearer": key}}},
            "checks": {
                "positive_data_acceptance": {"expected-statuses": POSITIVE_EXPECTED},
                "negative_data_rejection": {"expected-statuses": NEGATIVE_EXPECTED},
            },
        }
    )


@pytest.fixture
async def fuzz_account(session_factory: async_sessionmaker[AsyncSession]) -> Account:
    # A limit no fuzz run reaches, so every operation is exercised past the limiter.
    return await make_account(session_factory, tier=Tier.enterprise, rate_limit=10_000_000)


@pytest.fixture
def live_server(database_url: str, artifacts_dir: Path) -> Iterator[LiveServer]:
    # The fuzzer sends many deliberately bad keys from one address; the failing-address throttle (its own test is in
    # tests/faults) would answer them 429 without a tenant's rate-limit headers.
    server = LiveServer(database_url, env={"VIBEXP_AUTH_FAILURE_LIMIT": "1000000"}).start(log_dir=artifacts_dir)
    try:
        yield server
    finally:
        server.stop()


def _seed(url: str, session: requests.Session, key: str) -> dict[str, dict[str, str]]:
    """Real objects, so path-addressed operations also run against something that exists (not only 404s)."""
    auth = {"Authorization": f"Bearer {key}"}

    def post(path: str, body: dict[str, str]) -> dict[str, str]:
        response = session.post(f"{url}/api/v1{path}", json=body, headers=auth, timeout=30)
        assert response.status_code == 201, response.text
        created: dict[str, str] = response.json()
        return created

    prompt = post("/prompts", {"name": "seeded", "content": "seeded prompt"})
    memory = post("/memories", {"content": "seeded memory"})
    post("/artifacts", {"project": "seeded", "slug": "artifact", "title": "t", "content": "c"})
    spare_key = post("/api-keys", {"name": "fuzzed key"})  # never the fuzzing key: rotating it would lock us out
    return {
        "/api/v1/prompts/": {"item_id": prompt["id"]},
        "/api/v1/memories/": {"item_id": memory["id"]},
        "/api/v1/artifacts/": {"project": "seeded", "slug": "artifact"},
        "/api/v1/api-keys/": {"key_id": spare_key["id"]},
    }


def _fuzz(url: str, key: str) -> list[str]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=_config(key))
    failures: list[str] = []
    session = requests.Session()
    seeds = _seed(url, session, key)
    for result in schema.get_all_operations():
        operation = result.ok()
        fixed = next((v for prefix, v in seeds.items() if operation.path.startswith(prefix)), None)
        # Generated path values first (mostly 404s), then the seeded object's address.
        for path_parameters in [None, fixed] if fixed else [None]:
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

                @hypothesis.given(case=strategy)
                @hypothesis.settings(
                    max_examples=FUZZ_EXAMPLES,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                def run(case: schemathesis.Case) -> None:
                    case.call_and_validate(base_url=url, session=session)

                label = f"{operation.label} [{mode.value}{', seeded' if path_parameters else ''}]"
                try:
                    run()
                except hypothesis.errors.Unsatisfiable:
                    pass  # nothing to make invalid (an operation without parameters or body)
                except (Exception, BaseExceptionGroup) as exc:  # one per operation and mode, with a curl command
                    failures.append(f"{label}: {str(exc)[:3000]}")
    return failures


async def test_fuzz_finds_no_server_error_and_no_schema_violation(
    live_server: LiveServer, fuzz_account: Account
) -> None:
    failures = await asyncio.to_thread(_fuzz, live_server.url, fuzz_account.key)
    assert not failures, "\n\n".join(failures[:20]) + f"\n\n({len(failures)} failures)\n" + live_server.log()[-3000:]
