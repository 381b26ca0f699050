"""The resource gauges RabbitMQ's dashboards read: memory limit, free disk and its
limit, TCP socket limit, and the alarm gauges (1 while an alarm is in effect)."""

from __future__ import annotations

from tests.brokerproc import wait_port

from .conftest import Http, metric, wait_for


async def test_resource_gauges_and_disk_alarm(broker_factory):
    import aiohttp

    b = broker_factory("--disk-free-limit", str(1 << 62))  # more than any disk: the alarm goes on
    wait_port(b.prom_port)
    async with aiohttp.ClientSession() as s:
        http = Http(b, s)

        async def alarmed() -> bool:
            return metric(await http.metrics(), "rabbitmq_alarms_free_disk_space_watermark") == 1

        await wait_for(alarmed)
        m = await http.metrics()
        assert metric(m, "rabbitmq_disk_space_available_limit_bytes") == 1 << 62
        assert 0 < metric(m, "rabbitmq_disk_space_available_bytes") < 1 << 62
        assert metric(m, "rabbitmq_resident_memory_limit_bytes") > metric(m, "rabbitmq_process_resident_memory_bytes")
        assert metric(m, "rabbitmq_process_max_tcp_sockets") == metric(m, "rabbitmq_process_max_fds")
        assert metric(m, "rabbitmq_alarms_memory_used_watermark") == 0
        assert metric(m, "rabbitmq_alarms_file_descriptor_limit") == 0
