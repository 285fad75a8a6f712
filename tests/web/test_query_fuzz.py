"""Query input: every route of the gateway's web server, fuzzed (hypothesis) in its query
parameters and path parameters, answers a 2xx/3xx/4xx, never a 5xx; numeric parameters
out of 64-bit range are a 400 with a message."""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from collections.abc import Callable

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gwproactor.mqtt import MemoryBroker
from gwproactor.web._events_query import EVENT_PARAMS
from gwproactor.web._params import INT64_MAX, BadParamError, int_param
from tests.helpers import TIMEOUT, running
from tests.web._support import TOKEN, get_json, memory_gateway, web_settings

EXAMPLES_PER_ROUTE = 60
HEALTH_ROUTES = ("/readyz", "/livez")  # their 503 is the answer (not ready, stalled)
KNOWN_KEYS = (*EVENT_PARAMS, "part", "newest", "after_seq", "n")

_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
_numbers = st.integers(min_value=-(10**40), max_value=10**40).map(str)
_odd = st.sampled_from(
    ["9" * 31, "-1", "0", "1e9", "1_000", " 1", "١٢", "nan", "inf", "", "0x10", "+5", "main"]
)
_values = st.one_of(_numbers, _odd, _text)
_queries = st.lists(st.tuples(st.one_of(st.sampled_from(KNOWN_KEYS), _text), _values), max_size=5)
_path_values = st.one_of(st.sampled_from(["parent", "child", "nobody"]), _text)


def _fill(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda _: urllib.parse.quote(value, safe="") or "x", path)


async def test_every_route_answers_fuzzed_queries_without_a_server_error() -> None:
    child = memory_gateway(web_settings("child", token=TOKEN), MemoryBroker())
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with running(child), aiohttp.ClientSession(timeout=timeout) as http:
        loop = asyncio.get_running_loop()
        base = child.web.base_url()
        routes = [r for r in child.web.routes if r.server == "gateway"]
        assert {r.path for r in routes} >= {"/", "/status", "/metrics", "/events"}
        seen: dict[str, set[int]] = {}

        async def request(method: str, path: str, query: list[tuple[str, str]]) -> int:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with http.request(
                method, base + path, params=query, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                return response.status

        def fuzzer(method: str, route_path: str) -> Callable[[], None]:
            @settings(
                max_examples=EXAMPLES_PER_ROUTE,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(query=_queries, path_value=_path_values)
            def fuzz(query: list[tuple[str, str]], path_value: str) -> None:
                path = _fill(route_path, path_value)
                status = asyncio.run_coroutine_threadsafe(
                    request(method, path, query), loop
                ).result(TIMEOUT)
                seen.setdefault(f"{method} {route_path}", set()).add(status)
                ok = status < 500 or (route_path in HEALTH_ROUTES and status == 503)
                assert ok, (method, path, query, status)

            return fuzz

        for route in routes:
            await asyncio.to_thread(fuzzer(route.method, route.path))
        assert set(seen) == {f"{r.method} {r.path}" for r in routes}
        print(f"\nstatuses by route: {seen}")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("start_ns=" + "9" * 31, "start_ns must be an integer"),
        (f"end_ns={INT64_MAX + 1}", "end_ns must be between 0 and"),
        ("start_ns=-1", "start_ns must be between 0 and"),
        ("start_ns=1_000", "start_ns must be an integer"),
        ("limit=%D9%A1", "limit must be an integer"),
        ("limit=-5", "limit must be between 1 and"),
    ],
)
async def test_out_of_range_numbers_are_400_not_a_store_error(query: str, message: str) -> None:
    child = memory_gateway(web_settings(), MemoryBroker())
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with running(child), aiohttp.ClientSession(timeout=timeout) as http:
        status, body = await get_json(http, child, f"/events?{query}")
        problems = list(child.problems.recent)
    assert (status, body["error"]) == (400, "bad_request")
    assert message in body["message"]
    assert problems == []


def test_int_param_bounds() -> None:
    assert int_param({"a": str(INT64_MAX)}, "a") == INT64_MAX
    assert int_param({"a": str(-(2**63))}, "a") == -(2**63)
    assert int_param({}, "a") is None
    for bad in (str(INT64_MAX + 1), str(-(2**63) - 1), "1.0", "", "- 1"):
        with pytest.raises(BadParamError):
            int_param({"a": bad}, "a")
    with pytest.raises(BadParamError, match="between 1 and 10"):
        int_param({"a": "11"}, "a", low=1, high=10)
