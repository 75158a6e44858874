"""Where keys are used, on the dashboard (issue #31 item 8): the key's page and the usage page list the registered
countries of the key's (the account's) requests with their counts; a key used only from private addresses has
none and says so."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI

from dashboard.pages import Person, sign_in
from vibexp.core.geo import SHORT_NAMES, country_name, country_of

RIPE, ARIN = "193.0.6.139", "8.8.8.8"  # registered in different countries (checked below with the shipped data)


async def _use(app: FastAPI, person: Person, address: str, times: int) -> None:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        for _ in range(times):
            assert (await http.get("/api/v1/account", headers=person.account.headers)).status_code == 200


def _rows(html: str) -> list[tuple[str, str, str]]:
    """(country name, code, requests) of the countries table, in order."""
    table = html.split('data-testid="countries"', 1)[1].split("</table>", 1)[0]
    cell = r'<td data-label="Country"><span>([^<]+) <code class="muted">([A-Z]{2})</code></span></td>'
    return re.findall(cell + r'\s*<td data-label="Requests" class="num">([\d,]+)</td>', table)


def _name(address: str) -> str:
    name = country_name(country_of(address))
    assert name is not None
    return name


def test_country_names_are_the_ones_people_use() -> None:
    assert [country_name(code) for code in ("DE", "gb", "US", "KR", "TW", "NL")] == [
        "Germany",
        "United Kingdom",
        "United States",
        "South Korea",
        "Taiwan",
        "Netherlands",
    ]
    assert country_name("EU") is None and country_name(None) is None and country_name("") is None
    assert all(country_name(code) for code in SHORT_NAMES)


async def test_key_page_and_usage_page_list_countries_with_counts(
    app: FastAPI, client: httpx.AsyncClient, person: Person
) -> None:
    assert country_of(RIPE) and country_of(ARIN) and country_of(RIPE) != country_of(ARIN)
    await sign_in(client, person)
    key_page = await client.get(f"/settings/api-keys/{person.account.key_id}")
    assert key_page.status_code == 200
    assert "No requests from a public address yet" in key_page.text  # nothing yet
    await _use(app, person, "10.20.30.40", 2)  # private: no country
    await _use(app, person, RIPE, 3)
    await _use(app, person, ARIN, 1)
    await app.state.runtime.usage.flush()

    key_page = await client.get(f"/settings/api-keys/{person.account.key_id}")
    expected = [(_name(RIPE), country_of(RIPE), "3"), (_name(ARIN), country_of(ARIN), "1")]
    assert _rows(key_page.text) == expected
    usage = await client.get("/usage")
    assert usage.status_code == 200
    assert _rows(usage.text) == expected
