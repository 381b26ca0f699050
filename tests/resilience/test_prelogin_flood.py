"""Pre-login CPU amplification (issue 12, item 3): 60 connections send a
Connection.Start-Ok whose client_properties is a 130 KB array of one-byte values
(the worst case for a quadratic table decoder) while the canary runs; others send
the largest Start-Ok allowed before tuning (4 KB) of the same shape, repeatedly.
The canary's round trip stays under 1 s."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

AMQP_091 = b"AMQP\x00\x00\x09\x01"


def _start_ok_payload(array_bytes: int) -> bytes:
    arr = b"V" * array_bytes  # void values: one byte each
    table = b"\x01a" + b"A" + struct.pack(">I", len(arr)) + arr
    return (
        struct.pack(">HH", 10, 11)
        + struct.pack(">I", len(table))
        + table
        + b"\x05PLAIN"
        + struct.pack(">I", 12)
        + b"\0guest\0guest"
        + b"\x05en_US"
    )


def _frame(payload: bytes) -> bytes:
    return struct.pack(">BHI", 1, 0, len(payload)) + payload + b"\xce"


def _attack(port: int, frame: bytes, errors: list[str]) -> None:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        try:
            s.sendall(AMQP_091)
            s.recv(65536)  # Connection.Start
            s.sendall(frame)
            try:
                while s.recv(65536):  # until the broker closes (or answers and we hang up)
                    break
            except (ConnectionResetError, TimeoutError):
                pass
        finally:
            s.close()
    except OSError as e:  # a refused attacker is fine; the canary's health is what counts
        errors.append(repr(e))


def _wave(port: int, frame: bytes, n: int) -> list[str]:
    errors: list[str] = []
    threads = [threading.Thread(target=_attack, args=(port, frame, errors)) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


@pytest.mark.timeout(120)
def test_large_start_ok_flood_does_not_stall_other_clients(broker, canary):
    big = _frame(_start_ok_payload(130_000))
    largest_allowed = _start_ok_payload(4096 - 40)
    largest_allowed = _frame(_start_ok_payload(4096 - 40 - (len(largest_allowed) - 4096)))
    assert len(largest_allowed) == 4096 + 8
    _wave(broker.port, big, 60)
    for _ in range(3):
        _wave(broker.port, largest_allowed, 60)
    canary.wait_rounds(5)
    print(f"pre-login flood: canary max RTT {canary.max_rtt:.3f}s")
    assert canary.max_rtt < 1.0, f"canary max RTT {canary.max_rtt:.2f}s"
    assert "Traceback" not in broker.log_text()
