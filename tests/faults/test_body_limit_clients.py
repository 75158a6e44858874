"""413 that every common client can read: curl, requests, httpx, Python's urllib and Node's fetch.

A server that answers and closes while the body is still arriving makes the kernel reset the connection, and a
client that writes the whole body before reading (urllib, Node) then reports a broken connection instead of the
413. The server drains the body (up to a bound) before answering.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import httpx
import pytest
import requests

from helpers.databases import sqlite_url
from helpers.factories import make_account
from helpers.fixtures import start_servers
from helpers.servers import LiveServer
from vibexp.core.db import create_engine, create_session_factory
from vibexp.core.migrate import upgrade

pytestmark = pytest.mark.slow

#: Over the default 2 MiB limit, and large enough that it is still being sent when the server answers.
BODY = b'{"content": "' + b"x" * (12 * 1024 * 1024) + b'"}'
PATH = "/api/v1/memories"


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = sqlite_url(tmp_path_factory.mktemp("db"))
    upgrade(url)
    return url


@pytest.fixture(scope="module")
def server(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(database)
    start_servers([live], tmp_path_factory.mktemp("logs"))
    with live:
        yield live


def _is_413(status: int, body: bytes | str) -> None:
    assert status == 413, (status, body[:200])
    assert json.loads(body)["error"]["code"] == "payload_too_large"


def test_curl_reads_the_413(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> None:
    assert shutil.which("curl")
    body_file = tmp_path_factory.mktemp("body") / "body.json"
    body_file.write_bytes(BODY)
    for expect in ([], ["-H", "Expect:"]):  # with curl's default Expect: 100-continue, and without
        out = subprocess.run(
            ["curl", "-sS", "-X", "POST", *expect, "-H", "Content-Type: application/json",
             "--data-binary", f"@{body_file}", "-w", "\n%{http_code}", server.url + PATH],
            capture_output=True, timeout=60, check=True, text=True,
        )  # fmt: skip
        body, _, status = out.stdout.rpartition("\n")
        _is_413(int(status), body)


async def test_requests_reads_the_413_with_and_without_content_length(server: LiveServer, database: str) -> None:
    response = requests.post(server.url + PATH, data=BODY, headers={"Content-Type": "application/json"}, timeout=60)
    _is_413(response.status_code, response.content)
    engine = create_engine(database)
    try:
        account = await make_account(create_session_factory(engine))
    finally:
        await engine.dispose()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(BODY), 64 * 1024):
            yield BODY[start : start + 64 * 1024]

    # Without Content-Length the limit is found while reading, i.e. once the key let the request in.
    headers = {"Content-Type": "application/json", **account.headers}
    chunked = await asyncio.to_thread(requests.post, server.url + PATH, data=chunks(), headers=headers, timeout=60)
    _is_413(chunked.status_code, chunked.content)


def test_httpx_reads_the_413(server: LiveServer) -> None:
    response = httpx.post(server.url + PATH, content=BODY, headers={"Content-Type": "application/json"}, timeout=60)
    _is_413(response.status_code, response.content)


def test_urllib_reads_the_413(server: LiveServer) -> None:
    for _ in range(3):  # a reset is a race: try more than once
        request = urllib.request.Request(
            server.url + PATH, data=BODY, method="POST", headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=60)
        _is_413(refused.value.code, refused.value.read())


def test_node_fetch_reads_the_413(server: LiveServer) -> None:
    node = shutil.which("node")
    assert node, "node is part of the test tools"
    script = """
const body = '{"content": "' + 'x'.repeat(12 * 1024 * 1024) + '"}';
fetch(process.argv[1], {method: 'POST', body, headers: {'Content-Type': 'application/json'}})
  .then(async (r) => { console.log(r.status); console.log(await r.text()); })
  .catch((e) => { console.log('error', e.cause ? e.cause.code : e.message); process.exit(1); });
"""
    for _ in range(3):
        out = subprocess.run([node, "-e", script, server.url + PATH], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        status, _, body = out.stdout.partition("\n")
        _is_413(int(status), body)
