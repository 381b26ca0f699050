"""Differential: bad management API input (tests/management/test_validation.py's cases)
against RabbitMQ 3.10 with the management plugin and against warren.

Where RabbitMQ answers 4xx, warren must give the same status and the same reason
(regex error messages excepted: PCRE's and Python's words differ, the shape is the
same). Where RabbitMQ crashes (500) or accepts what AMQP cannot carry (a name or
routing key over 255 bytes), warren must answer 400 instead; those cases are listed
so that a change on either side shows up.
"""

from __future__ import annotations

import base64

import aiohttp
import pytest

from tests.brokerproc import wait_port
from tests.management.test_validation import CASES

from .test_management_diff import rabbit_mgmt  # noqa: F401 - fixture

AUTH = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}


async def _run(base: str) -> list[tuple[int, object]]:
    out = []
    async with aiohttp.ClientSession() as s:
        async with s.put(base + "/api/queues/%2F/vq", json={}, headers=AUTH) as r:
            assert r.status in (201, 204)
        for method, path, body, _status, _want in CASES:
            async with s.request(method, base + path, json=body, headers=AUTH) as r:
                text = await r.text()
                reason = None
                if r.content_type == "application/json" and text:
                    reason = (await r.json()).get("reason") if isinstance(await r.json(), dict) else None
                out.append((r.status, reason))
            # undo whatever RabbitMQ accepted, so later cases start from the same state
            if method == "PUT" and r.status in (201, 204) and "/api/policies/" in path:
                await (await s.delete(base + path, headers=AUTH)).release()
        await (await s.put(base + "/api/permissions/%2F/guest", json={"configure": ".*", "write": ".*", "read": ".*"},
                           headers=AUTH)).release()
    return out


def _same_reason(rabbit: object, warren: object) -> bool:
    if rabbit == warren:
        return True
    if isinstance(rabbit, list) and isinstance(warren, list) and rabbit[:1] == ["invalid_regexp"]:
        return rabbit[:2] == warren[:2]  # the pattern; the message is the regex engine's own
    marker = "pattern should be regular expression but is invalid: "
    if isinstance(rabbit, str) and isinstance(warren, str) and marker in rabbit:
        return warren.startswith(rabbit.split(marker)[0] + marker)
    return False


@pytest.mark.timeout(180)
async def test_bad_input_answers_match_rabbitmq(rabbit_mgmt, warren):  # noqa: F811
    _, rabbit_http = rabbit_mgmt
    wait_port(warren.mgmt_port)
    rabbit = await _run(f"http://127.0.0.1:{rabbit_http}")
    ours = await _run(f"http://127.0.0.1:{warren.mgmt_port}")
    same, better, problems = 0, 0, []
    for (method, path, body, _s, _w), (rs, rr), (ws, wr) in zip(CASES, rabbit, ours, strict=True):
        label = f"{method} {path[:50]} {body!r:.70}"
        if rs == 500 or rr == "function_clause" or (rs in (200, 201, 204) and ws == 400):
            # RabbitMQ crashed (500, or an Erlang function_clause as the reason) or took
            # what AMQP cannot carry: warren refuses with a reason of its own
            if ws != 400:
                problems.append(f"{label}: rabbit {rs}, warren {ws} {wr!r:.120}")
            better += 1
        elif rs != ws or not _same_reason(rr, wr):
            problems.append(f"{label}: rabbit {rs} {rr!r:.160} / warren {ws} {wr!r:.160}")
        else:
            same += 1
    assert not problems, "\n".join(problems)
    assert same >= 20, (same, better)  # RabbitMQ 3.10: 23 answered alike, 17 crashed or accepted
