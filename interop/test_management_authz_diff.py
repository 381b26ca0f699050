"""Differential: the management API's authorization matrix (every route x 11 users of each tag
with full, ``^$``, read-only or no permissions) gives the same status codes on warren and on
RabbitMQ 3.10 with the management plugin (issue 12 item 1).

The set-up and probes are tests/management/authz_matrix.py; the RabbitMQ node is a private
one (``rabbit_mgmt`` fixture of test_management_diff.py). Skipped when RabbitMQ is not
installed and CI is unset.
"""

from __future__ import annotations

import pytest

from tests.brokerproc import wait_port
from tests.management import authz_matrix as M
from tests.management.test_authz import differences

from .test_management_diff import rabbit_mgmt  # noqa: F401 - fixture


@pytest.mark.timeout(300)
async def test_authorization_matrix_matches_rabbitmq(rabbit_mgmt, warren):  # noqa: F811
    amqp, mgmt = rabbit_mgmt
    rmq = await M.run(f"http://127.0.0.1:{mgmt}/api", amqp)
    wait_port(warren.mgmt_port)
    ours = await M.run(f"http://127.0.0.1:{warren.mgmt_port}/api", warren.port)
    assert len(rmq) > 1500 and rmq.keys() == ours.keys()
    problems = differences(rmq, ours)
    assert not problems, "\n".join(problems)
