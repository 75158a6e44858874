"""The front door into the core: one ``Caller`` per adapter, scopes as an enum, use cases that declare the scope they
check (and that MCP tools read instead of declaring it again), and the one unit of work, whose write units take the
SQLite writer turn."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import TEST_ACTOR
from vibexp.api.mcp.tools import TOOL_SCOPES
from vibexp.core import access
from vibexp.core.access import Actor, ActorType, Caller, CredentialKind, Role, Scope, required_scope, requires
from vibexp.core.alerts import usecases as alert_cases
from vibexp.core.audit import usecases as audit_cases
from vibexp.core.content import usecases as content
from vibexp.core.db import create_engine, create_session_factory, session_scope, writing
from vibexp.core.errors import InsufficientScope
from vibexp.core.keys import usecases as key_cases
from vibexp.core.keys.verifier import Principal
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants import usecases as account_cases
from vibexp.core.tenants.schemas import TenantCreate
from vibexp.core.usage import usecases as usage_cases


def _principal(scopes: tuple[str, ...]) -> Principal:
    return Principal(
        key_id="k1",
        key_prefix="vib_ab12",
        key_name="ci",
        tenant_id="t1",
        tenant_name="acme",
        tier="free",
        hourly_limit=100,
        suspended=False,
        expires_at=None,
        scopes=scopes,
        granted=access.expand(scopes),
        allowed_cidrs=("10.0.0.0/8",),
        acting_as=Actor(ActorType.api_key, id="k1", name="ci (vib_ab12…)"),
    )


def test_a_keys_caller_reuses_what_the_verifier_cached_and_adds_only_the_request() -> None:
    principal = _principal(("read",))
    caller = principal.caller(client_ip="10.1.2.3", user_agent="curl/8")
    assert caller.granted is principal.granted  # the cached frozenset, not a copy
    assert caller.acting_as is principal.acting_as
    assert all(isinstance(scope, Scope) for scope in caller.granted)
    assert (caller.tenant_id, caller.credential, caller.credential_id, caller.person) == (
        "t1",
        CredentialKind.api_key,
        "k1",
        None,
    )
    assert (caller.actor.type, caller.actor.id, caller.actor.name) == (ActorType.api_key, "k1", "ci (vib_ab12…)")
    assert (caller.actor.client_ip, caller.actor.user_agent) == ("10.1.2.3", "curl/8")
    assert (caller.allowed_cidrs, caller.acts_for_account) == (("10.0.0.0/8",), False)


def test_people_the_cli_and_the_operator_act_for_the_whole_account() -> None:
    person = Caller.signed_in(
        tenant_id="t1", user_id="u1", name="a@b.c", client_ip="::1", user_agent="firefox", role=Role.owner
    )
    cli = Caller.cli("t1")
    operator = Caller.operator("t1", actor=TEST_ACTOR)
    for caller, kind in (
        (person, CredentialKind.dashboard_session),
        (cli, CredentialKind.cli),
        (operator, CredentialKind.operator),
    ):
        assert caller.credential is kind
        assert caller.granted == frozenset(Scope)
        assert caller.acts_for_account
        assert caller.role == (Role.owner if caller is person else None)
    assert (person.person, person.actor.type, person.actor.name, person.client_ip) == ("u1", "user", "a@b.c", "::1")
    assert (person.actor.client_ip, person.actor.user_agent) == ("::1", "firefox")
    assert cli.actor.type is ActorType.cli
    assert operator.actor is TEST_ACTOR


def test_the_scope_enum_is_every_concrete_scope_name() -> None:
    assert {scope.value for scope in Scope} == set(access.SCOPE_NAMES) - {access.READ_ONLY, access.FULL_ACCESS}
    assert access.expand(["prompts:write"]) == {Scope.prompts_write, Scope.prompts_read}
    assert access.expand(["alerts:write"]) == {Scope.alerts_write, Scope.audit_read}


async def test_a_declared_use_case_checks_its_scope_before_it_runs() -> None:
    ran: list[str] = []

    @requires(Scope.keys_write)
    async def change(*, caller: Caller) -> str:
        ran.append(caller.tenant_id)
        return "done"

    reader = _principal(("read",)).caller(client_ip=None, user_agent=None)
    with pytest.raises(InsufficientScope) as raised:
        await change(caller=reader)
    assert raised.value.scope == "keys:write"
    assert ran == []
    assert await change(caller=Caller.cli("t1")) == "done"
    assert required_scope(change) is Scope.keys_write
    with pytest.raises(TypeError):
        required_scope(_principal)


def test_every_domains_use_cases_declare_their_scope() -> None:
    declared = {
        key_cases.list_keys: Scope.keys_read,
        key_cases.get: Scope.keys_read,
        key_cases.create: Scope.keys_write,
        key_cases.rotate: Scope.keys_write,
        key_cases.revoke: Scope.keys_write,
        key_cases.delete: Scope.keys_write,
        key_cases.revoke_or_delete: Scope.keys_write,
        usage_cases.of_key: Scope.keys_read,
        alert_cases.list_alerts: Scope.audit_read,
        alert_cases.count_open: Scope.audit_read,
        alert_cases.acknowledge: Scope.alerts_write,
        audit_cases.list_events: Scope.audit_read,
        account_cases.own_account: Scope.account_read,
        content.prompts.list: Scope.prompts_read,
        content.prompts.resolve: Scope.prompts_read,
        content.prompts.find: Scope.prompts_read,
        content.memories.find: Scope.memories_read,
        content.artifacts.save: Scope.artifacts_write,
        content.memories.delete: Scope.memories_write,
    }
    assert {use_case: required_scope(use_case) for use_case in declared} == declared


def test_mcp_tool_scopes_are_the_scopes_of_the_use_cases_they_call() -> None:
    assert TOOL_SCOPES["get_prompt"] is required_scope(content.prompts.find) is Scope.prompts_read
    assert TOOL_SCOPES["save_artifact"] is Scope.artifacts_write
    assert TOOL_SCOPES["search_memories"] is Scope.memories_read
    assert all(isinstance(scope, Scope) for scope in TOOL_SCOPES.values())


async def test_domain_use_cases_refuse_a_key_without_the_scope(session: AsyncSession) -> None:
    tenant = await tenants.create_tenant(session, data=TenantCreate(name="front-door"))
    memories_only = Caller(tenant.id, CredentialKind.api_key, access.expand(["memories:write"]), TEST_ACTOR)
    refused = {
        "keys:read": key_cases.list_keys(session, caller=memories_only),
        "audit:read": alert_cases.list_alerts(session, caller=memories_only),
        "alerts:write": alert_cases.acknowledge(session, caller=memories_only, alert_id="a"),
        "account:read": account_cases.own_account(session, caller=memories_only),
    }
    for scope, attempt in refused.items():
        with pytest.raises(InsufficientScope) as raised:
            await attempt
        assert raised.value.scope == scope
    owner = Caller.cli(tenant.id)
    assert (await account_cases.own_account(session, caller=owner)).id == tenant.id
    assert [event.action for event in (await audit_cases.list_events(session, caller=owner)).items] == [
        "tenant.created"
    ]


async def test_a_write_unit_of_work_takes_the_sqlite_writer_turn(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'turn.db'}")
    factory = create_session_factory(engine)
    try:
        async with writing(engine):  # another writer holds the turn: a write unit waits, a read unit does not
            async with session_scope(factory) as session:
                assert session.in_transaction() is False
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(_enter_write(factory), timeout=0.2)
        await asyncio.wait_for(_enter_write(factory), timeout=1)
    finally:
        await engine.dispose()


async def _enter_write(factory: async_sessionmaker[AsyncSession]) -> None:
    async with session_scope(factory, write=True):
        pass


def test_a_missing_scope_is_named_by_its_value() -> None:
    error = InsufficientScope(Scope.audit_read)
    assert error.message == "This API key lacks the scope 'audit:read' this operation needs", error.message
    assert error.scope == "audit:read" and type(error.scope) is str
