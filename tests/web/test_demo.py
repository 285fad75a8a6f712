"""The README's first command: ``gwproactor demo`` (here without the live view, and short).

It must start its own broker, run the parent and the child, serve both status pages, go
through its broker outage, end with every event the child generated stored at the parent,
and leave nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from pathlib import Path

import aiohttp
import pytest

pytestmark = pytest.mark.broker

TIMEOUT = 60.0
GWPROACTOR = Path(sys.executable).parent / "gwproactor"


async def test_demo_runs_through_an_outage_and_serves_its_status_pages(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "400", "TMPDIR": str(tmp_path)}
    process = await asyncio.create_subprocess_exec(
        str(GWPROACTOR),
        "demo",
        "--no-live",
        "--duration",
        "8",
        "--outage-at",
        "2",
        "--outage-seconds",
        "2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    assert process.stdout is not None
    lines: list[str] = []
    pages: dict[str, str] = {}
    try:
        async with asyncio.timeout(TIMEOUT):
            while not pages:
                raw = await process.stdout.readline()
                assert raw, "the demo ended before it showed its status pages:\n" + "".join(lines)
                lines.append(raw.decode())
                if "status pages" in lines[-1]:
                    pages = dict(re.findall(r"(\w+) (http://127\.0\.0\.1:\d+/)", lines[-1]))
            assert set(pages) == {"parent", "child"}
            async with aiohttp.ClientSession() as session:
                for gateway, url in pages.items():
                    async with session.get(url) as response:
                        assert response.status == 200
                        html = await response.text()
                    assert gateway in html
                    assert re.search(r"connecting|awaiting_\w+|active", html)
            rest = await process.stdout.read()
            lines.append(rest.decode())
            rc = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            with contextlib.suppress(ProcessLookupError):
                await process.wait()
    output = "".join(lines)
    assert rc == 0, output
    assert "broker killed" in output and "broker restarted" in output, output
    # Each link line names its gateway: the child's link to the parent is "child → parent".
    assert "child \N{RIGHTWARDS ARROW} parent: active -> connecting" in output, output
    assert "parent \N{RIGHTWARDS ARROW} child: active -> connecting" in output, output
    match = re.search(r"child generated (\d+) events; parent stored (\d+)", output)
    assert match is not None, output
    generated, stored = int(match[1]), int(match[2])
    assert generated > 0 and stored == generated, output
    assert "left pending in the child: 0" in output
    # Its broker and work directory are gone.
    assert os.listdir(tmp_path) == []
