"""Every PromQL expression of RabbitMQ's official Grafana dashboard "RabbitMQ-Overview".

Source: https://github.com/rabbitmq/rabbitmq-server/blob/008e4584cd3dd8cb3b7e82f338a9a6315c5315b1/
deps/rabbitmq_prometheus/docker/grafana/dashboards/RabbitMQ-Overview.json
(dashboard "version": 20210322, uid Kn5xm-gZk, Grafana 7; MPL-2.0). The panel
layout is not copied; the targets are, one per panel in panel order, with the
join to ``rabbitmq_identity_info`` written once as ``J`` (by cluster) and ``JN``
(by cluster and node) exactly as the dashboard spells it. ``TEMPLATE_QUERIES``
are the dashboard's two template variables (namespace, then rabbitmq_cluster).

If the full dashboard JSON is placed beside this file as ``RabbitMQ-Overview.json``,
tests/grafana/test_prometheus.py reads every target from it instead.
"""

from __future__ import annotations

_ID = 'rabbitmq_identity_info{rabbitmq_cluster="$rabbitmq_cluster", namespace="$namespace"}'
J = " * on(instance) group_left(rabbitmq_cluster) " + _ID
JN = " * on(instance) group_left(rabbitmq_cluster, rabbitmq_node) " + _ID

TEMPLATE_QUERIES = {
    "namespace": "label_values(rabbitmq_identity_info, namespace)",
    "rabbitmq_cluster": 'label_values(rabbitmq_identity_info{namespace="$namespace"}, rabbitmq_cluster)',
}


def _by_node_rate(metric: str) -> str:
    return f"sum(rate({metric}[60s]){JN}) by(rabbitmq_node)"


EXPRS: list[str] = [
    # singlestats
    f"sum(rabbitmq_queue_messages_ready{J})",
    f"sum(rate(rabbitmq_channel_messages_published_total[60s]){J})",
    f"sum(rabbitmq_channels{J}) - sum(rabbitmq_channel_consumers{J})",
    f"sum(rabbitmq_connections{J})",
    f"sum(rabbitmq_queues{J})",
    f"sum(rabbitmq_queue_messages_unacked{J})",
    f"sum(rate(rabbitmq_channel_messages_redelivered_total[60s]){J}) +\n"
    f"sum(rate(rabbitmq_channel_messages_delivered_total[60s]){J}) +\n"
    f"sum(rate(rabbitmq_channel_messages_delivered_ack_total[60s]){J}) +\n"
    f"sum(rate(rabbitmq_channel_get_total[60s]){J}) +\n"
    f"sum(rate(rabbitmq_channel_get_ack_total[60s]){J})",
    f"sum(rabbitmq_channel_consumers{J})",
    f"sum(rabbitmq_channels{J})",
    f"sum(rabbitmq_build_info{J})",
    # NODES
    "rabbitmq_build_info * on(instance) group_left(rabbitmq_cluster, rabbitmq_node) " + _ID,
    f"(rabbitmq_resident_memory_limit_bytes{JN}) -\n(rabbitmq_process_resident_memory_bytes{JN})",
    f"rabbitmq_disk_space_available_bytes{JN}",
    f"(rabbitmq_process_max_fds{JN}) -\n(rabbitmq_process_open_fds{JN})",
    f"(rabbitmq_process_max_tcp_sockets{JN}) -\n(rabbitmq_process_open_tcp_sockets{JN})",
    # QUEUED MESSAGES
    f"sum(rabbitmq_queue_messages_ready{JN}) by(rabbitmq_node)",
    f"sum(rabbitmq_queue_messages_unacked{JN}) by(rabbitmq_node)",
    # INCOMING MESSAGES
    _by_node_rate("rabbitmq_channel_messages_published_total"),
    _by_node_rate("rabbitmq_channel_messages_confirmed_total"),
    _by_node_rate("rabbitmq_queue_messages_published_total"),
    _by_node_rate("rabbitmq_channel_messages_unconfirmed"),
    _by_node_rate("rabbitmq_channel_messages_unroutable_dropped_total"),
    _by_node_rate("rabbitmq_channel_messages_unroutable_returned_total"),
    # OUTGOING MESSAGES
    f"sum(\n  (rate(rabbitmq_channel_messages_delivered_total[60s]){JN}) +\n"
    f"  (rate(rabbitmq_channel_messages_delivered_ack_total[60s]){JN})\n) by(rabbitmq_node)",
    _by_node_rate("rabbitmq_channel_messages_redelivered_total"),
    _by_node_rate("rabbitmq_channel_messages_delivered_ack_total"),
    _by_node_rate("rabbitmq_channel_messages_delivered_total"),
    _by_node_rate("rabbitmq_channel_messages_acked_total"),
    _by_node_rate("rabbitmq_channel_get_total"),
    _by_node_rate("rabbitmq_channel_get_empty_total"),
    _by_node_rate("rabbitmq_channel_get_ack_total"),
    # QUEUES
    f"rabbitmq_queues{JN}",
    _by_node_rate("rabbitmq_queues_declared_total"),
    _by_node_rate("rabbitmq_queues_created_total"),
    _by_node_rate("rabbitmq_queues_deleted_total"),
    # CHANNELS
    f"rabbitmq_channels{JN}",
    _by_node_rate("rabbitmq_channels_opened_total"),
    _by_node_rate("rabbitmq_channels_closed_total"),
    # CONNECTIONS
    f"rabbitmq_connections{JN}",
    _by_node_rate("rabbitmq_connections_opened_total"),
    _by_node_rate("rabbitmq_connections_closed_total"),
]
