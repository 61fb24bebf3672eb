"""Collectives among ranks (threads) over real loopback TCP via the rendezvous server."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from tests.rendezvous_helpers import address, running_server
from worker.collectives import CollectiveError, Communicator, allreduce_job_metrics

pytestmark = pytest.mark.timeout(180)
SIZES = [1, 2, 3, 4, 7, 8]


def run_ranks(world, fn, server, **kw):
    def body(rank):
        options = {"timeout": 30, **kw}
        with Communicator(rank, world, f"job-{world}-{fn.__name__}", rendezvous=address(server), **options) as comm:
            return fn(comm)

    with ThreadPoolExecutor(world) as pool:
        return list(pool.map(body, range(world)))


@pytest.fixture(scope="module")
def server():
    with running_server() as srv:
        yield srv


def data(rank, n=10):
    return np.random.default_rng(rank).standard_normal(n)


@pytest.mark.parametrize("world", SIZES)
def test_every_collective_matches_numpy(server, world):
    def work(comm):
        r = comm.rank
        out = {}
        comm.barrier()
        out["bcast"] = comm.bcast({"hello": 7} if r == 2 % comm.size else None, root=2 % comm.size)
        for op in ("sum", "min", "max", "prod"):
            out[f"reduce_{op}"] = comm.reduce(data(r), op, root=comm.size - 1)
            out[f"allreduce_{op}"] = comm.allreduce(data(r), op)
        out["allreduce_big"] = comm.allreduce(data(r, 40_001), "sum")  # ring path (320 kB, uneven chunks)
        out["torch"] = comm.allreduce(torch.tensor([float(r), 1.0]), "sum")
        in_place = torch.from_numpy(data(r, 40_001))
        out["in_place_is_out"] = comm.allreduce(in_place, "max", out=in_place) is in_place
        out["in_place"] = in_place.numpy()
        out["gather"] = comm.gather(r * 10, root=0)
        out["scatter"] = comm.scatter([f"to-{i}" for i in range(comm.size)] if r == 0 else None, root=0)
        return out

    results = run_ranks(world, work, server)
    stack = np.stack([data(r) for r in range(world)])
    expected = {"sum": stack.sum(0), "min": stack.min(0), "max": stack.max(0), "prod": stack.prod(0)}
    for r, out in enumerate(results):
        assert out["bcast"] == {"hello": 7}
        for op, value in expected.items():
            np.testing.assert_allclose(out[f"allreduce_{op}"], value, rtol=1e-12)
            if r == world - 1:
                np.testing.assert_allclose(out[f"reduce_{op}"], value, rtol=1e-12)
            else:
                assert out[f"reduce_{op}"] is None
        np.testing.assert_allclose(out["allreduce_big"], np.stack([data(i, 40_001) for i in range(world)]).sum(0),
                                   rtol=1e-12, atol=1e-12)
        assert out["in_place_is_out"]
        np.testing.assert_array_equal(out["in_place"], np.stack([data(i, 40_001) for i in range(world)]).max(0))
        assert isinstance(out["torch"], torch.Tensor) and out["torch"].tolist() == [world * (world - 1) / 2, world]
        assert out["gather"] == ([i * 10 for i in range(world)] if r == 0 else None)
        assert out["scatter"] == f"to-{r}"


def test_large_messages_stream_through(server):
    big = np.arange(4_000_000, dtype=np.float32)  # 16 MB

    def work(comm):
        if comm.rank == 0:
            comm.send(1, big)
            return comm.channels
        return comm.recv(0)

    channels, received = run_ranks(2, work, server)
    np.testing.assert_array_equal(received, big)
    assert channels == {1: "direct"}


def test_relay_channel_reports_itself(server):
    results = run_ranks(3, lambda c: (c.allreduce(np.array([c.rank]), "sum"), c.channels), server, channel="relay")
    for total, channels in results:
        assert total.tolist() == [3] and set(channels.values()) == {"relay"}


def test_direct_falls_back_to_relay_when_punching_fails(server, monkeypatch):
    import rendezvous.client as client

    def unpunchable(*args, **kwargs):  # as behind a symmetric NAT: no path opens before the deadline
        raise client.PairingTimeout("simulated: no direct path")

    monkeypatch.setattr(client, "_punch", unpunchable)
    results = run_ranks(2, lambda c: (c.allreduce(np.array([1.0]), "sum"), c.channels), server)
    assert all(total.tolist() == [2.0] and set(ch.values()) == {"relay"} for total, ch in results)


def test_dead_connection_is_re_paired_once(server):
    def work(comm):
        if comm.rank == 0:
            comm.send(1, np.array([1]))
            assert comm.recv(1) == "got 1"
            comm.peers[1].sock.shutdown(socket.SHUT_RDWR)  # the connection drops (spcl/fmi issue 9)
            comm.send(1, np.array([2]))
            return comm.recv(1), comm.peers[1].repairs
        first = comm.recv(0)
        comm.send(0, "got 1")
        second = comm.recv(0)
        comm.send(0, f"got {int(first[0])} and {int(second[0])}")
        return None, comm.peers[0].repairs

    (reply, repairs0), (_, repairs1) = run_ranks(2, work, server)
    assert reply == "got 1 and 2" and repairs0 == 1 and repairs1 == 1


def test_job_metrics_allreduce_for_the_worker_handler(server):
    def rank_event(rank):
        return {"rank": rank, "world_size": 3, "job_id": "metrics-job", "comm": "direct", "rendezvous": address(server)}

    metrics = [{"rows": 10 * (r + 1), "sum_abs_err": 1.0 * (r + 1), "sum_sq_err": 0.5, "wall_seconds": 2.0 + r,
                "bytes_read": 100} for r in range(3)]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda r: allreduce_job_metrics(rank_event(r), metrics[r], 30), range(3)))
    g = results[0]["global"]
    assert g["rows"] == 60 and g["mae"] == pytest.approx(6.0 / 60) and g["rmse"] == pytest.approx((1.5 / 60) ** 0.5)
    assert g["max_wall_seconds"] == 4.0 and g["bytes_read"] == 300
    assert "global" not in results[1] and results[1]["pairs"]


def test_a_silent_peer_is_a_clear_timeout_not_a_hang(server):
    import time

    def work(comm):
        comm.connect([1 - comm.rank])
        if comm.rank == 1:
            time.sleep(3)  # connected, but never sends
            return None
        started = time.monotonic()
        with pytest.raises(CollectiveError, match="no message from rank 1 within 1 s"):
            comm.recv(1)
        return time.monotonic() - started

    waited, _ = run_ranks(2, work, server, timeout=1)
    assert 0.9 <= waited < 2.5


# -- issue 14: a hostile or broken peer gets a clear error, not a crash --------------------------------

def _communicator_with_raw_peer(**kw):
    """Rank 0 connected to a raw socket that plays rank 1."""
    from worker.collectives import _Peer

    ours, theirs = socket.socketpair()
    comm = Communicator(0, 2, "raw", rendezvous="127.0.0.1:1", timeout=5, **kw)
    comm.peers[1] = _Peer(ours, "direct")
    return comm, theirs


def _message(meta: bytes, nbytes: int, payload: bytes = b"") -> bytes:
    import struct

    return struct.pack("!I", len(meta)) + meta + struct.pack("!Q", nbytes) + payload


@pytest.mark.parametrize("raw, match", [
    (_message(b'{"t":"nd","dtype":"<f4","shape":[1]}', 2**62), "announced a message of 4611686018427387904 bytes"),
    (b"\xff\xff\xff\xf0", "header of 4294967280 bytes"),
    (_message(b"not json", 0), "not JSON"),
    (_message(b'{"t":"pickle"}', 0), "not one of kinds"),
    (_message(b'{"t":"nd","dtype":"O","shape":[1]}', 8, b"\0" * 8), "numeric"),
    (_message(b'{"t":"nd","dtype":"<f8","shape":[3]}', 5, b"\0" * 5), "does not fill"),
    (_message(b'{"t":"nd","dtype":"bogus","shape":[1]}', 1, b"\0"), "not a numpy dtype"),
    (_message(b'{"t":"json"}', 3, b"{{{"), "payload is not JSON"),
], ids=["huge-payload", "huge-header", "meta-not-json", "unknown-kind", "object-dtype", "shape-mismatch",
        "bogus-dtype", "payload-not-json"])
def test_malformed_messages_raise_a_collective_error(raw, match):
    comm, theirs = _communicator_with_raw_peer()
    with comm, theirs:
        theirs.sendall(raw)
        with pytest.raises(CollectiveError, match=match):
            comm.recv(1)


def test_a_message_over_the_configured_limit_is_refused_before_allocation():
    comm, theirs = _communicator_with_raw_peer(max_message_bytes=1024)
    with comm, theirs:
        theirs.sendall(_message(b'{"t":"nd","dtype":"<f4","shape":[1000]}', 4000))
        with pytest.raises(CollectiveError, match="over the limit of 1024"):
            comm.recv(1)
        theirs.sendall(_message(b'{"t":"nd","dtype":"<f4","shape":[4]}', 2**40))
        with pytest.raises(CollectiveError, match="announced"):
            comm.recv_into(1, np.empty(4, dtype=np.float32))
