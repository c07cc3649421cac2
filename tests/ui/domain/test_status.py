"""Reading systemd's answer for several servers at once; who may ask; A2S answers a server's
owner controls (compressed, spoofed) refused."""

from __future__ import annotations

import bz2
import contextlib
import socket
import struct
import threading
import tracemalloc
from collections.abc import Iterator

import pytest

from left4me_ui import blueprints, host_reads, servers, status
from left4me_ui.authz import NotFound
from left4me_ui.inventory import Inventory
from left4me_ui.runner import ModuleRun


def test_one_info_read_of_the_host_gives_each_servers_unit_state(core, alice, monkeypatch):
    blueprint = blueprints.create(core, alice, "coop", [], blueprints.BlueprintSettings())
    ids = [servers.create(core, alice, name, "alpha", blueprint.id)[0]
           for name in ("a1", "b2", "c3")]
    reads = []

    def read(_core, host, verb, instance, args, deadline):
        reads.append((host, verb, instance))
        return ModuleRun(True, "", {"instances": [
            {"name": "a1", "active_state": "active", "sub_state": "running",
             "result": "success"},
            {"name": "b2", "active_state": "failed", "sub_state": "failed",
             "result": "oom-kill"},
            {"name": "other", "active_state": "active", "sub_state": "running"}]})

    monkeypatch.setattr(host_reads, "read", read)
    states = status.systemd_states(core, alice, "alpha")
    assert reads == [("alpha", "info", None)]  # one request for all of the host's servers
    assert states[ids[0]].text == "active (running)"
    assert states[ids[1]].text == "failed (failed), last result oom-kill"
    assert states[ids[2]].text == "unknown (unknown)"  # not in the host's answer
    assert set(states) == set(ids)  # "other" on the host is no server of this UI


def test_other_users_cannot_probe_a_server(core, alice, bob):
    blueprint = blueprints.create(core, alice, "coop", [], blueprints.BlueprintSettings())
    server_id, _ = servers.create(core, alice, "alice1", "alpha", blueprint.id)
    with pytest.raises(NotFound):
        status.a2s_info(core, bob, server_id)
    assert status.systemd_states(core, bob, "alpha") == {}  # nothing of bob's there
    # Nobody answers (on loopback: probes never leave this machine): None, not an error.
    core._inventory = None
    core.inventory_loader = lambda _path: Inventory({"alpha": {"ansible_host": "127.0.0.1"}})
    assert status.a2s_info(core, alice, server_id, timeout=0.2) is None


# --- a hostile answer: the UI asks a server that runs its owner's code ----------------------

# ~100 MiB of zeros, bz2: a few hundred bytes on the wire.
_BOMB = bz2.compress(b"\0" * 100 * 2**20)


def _split_answer(payload: bytes) -> bytes:
    """One Source split packet, marked compressed (bit 31 per Valve, bit 15 as python-a2s
    reads it), holding a bz2 stream that inflates to ~100 MiB."""
    return (b"\xfe\xff\xff\xff" + struct.pack("<IBBH", 0x80008001, 1, 0, 1248)
            + struct.pack("<II", 100 * 2**20, 0) + payload)


@contextlib.contextmanager
def _fake_server(answer) -> Iterator[int]:
    """A UDP 'server' on 127.0.0.1 that answers every query with answer(query, sock, peer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                query, peer = sock.recvfrom(2048)
            except TimeoutError:
                continue
            answer(query, sock, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        sock.close()


def _alices_server_at(core, alice, port: int) -> int:
    blueprint = blueprints.create(core, alice, "coop", [], blueprints.BlueprintSettings())
    server_id, _ = servers.create(core, alice, "alice1", "alpha", blueprint.id)
    with core.db.connect() as conn:
        conn.execute("UPDATE servers SET port = ? WHERE id = ?", (port, server_id))
    core._inventory = None
    core.inventory_loader = lambda _path: Inventory({"alpha": {"ansible_host": "127.0.0.1"}})
    return server_id


def test_a_compressed_answer_is_refused_without_inflating_it(core, alice):
    with _fake_server(lambda _q, sock, peer: sock.sendto(_split_answer(_BOMB), peer)) as port:
        server_id = _alices_server_at(core, alice, port)
        tracemalloc.start()
        try:
            answer = status.a2s_info(core, alice, server_id, timeout=1.0)
            _now, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert answer is None
    assert peak < 8 * 2**20, f"one datagram made the UI allocate {peak / 2**20:.0f} MiB"


def _info_payload(name: str) -> bytes:
    return (b"\xff\xff\xff\xffI\x11" + name.encode() + b"\0c1m1_hotel\0left4dead2\0L4D2\0"
            + struct.pack("<H", 550) + bytes([1, 8, 0]) + b"dl\0\0" + b"2.2.4.3\0")


def test_an_answer_from_another_address_is_not_taken_for_the_servers(core, alice):
    spoofer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    spoofer.bind(("127.0.0.1", 0))

    def answer_from_elsewhere(_query, _sock, peer) -> None:
        spoofer.sendto(_info_payload("Spoofed"), peer)

    try:
        with _fake_server(answer_from_elsewhere) as port:
            server_id = _alices_server_at(core, alice, port)
            assert status.a2s_info(core, alice, server_id, timeout=0.5) is None
    finally:
        spoofer.close()


def test_the_servers_own_answer_is_read(core, alice):
    with _fake_server(lambda _q, sock, peer: sock.sendto(_info_payload("Alice's"), peer)) as port:
        server_id = _alices_server_at(core, alice, port)
        answer = status.a2s_info(core, alice, server_id, timeout=1.0)
    assert answer == status.A2SAnswer("Alice's", "c1m1_hotel", 1, 8)
