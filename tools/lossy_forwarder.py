#!/usr/bin/env python3
"""A ZeroMQ forwarder between edgecodec senders and receivers that loses packets on purpose.

``python tools/lossy_forwarder.py --bind tcp://127.0.0.1:5556 --connect tcp://127.0.0.1:5555 --drop 0.1 --seed 1``
then ``edgecodec send --connect tcp://127.0.0.1:5556 ...`` and ``edgecodec receive --bind tcp://127.0.0.1:5555``.

Senders connect to ``--bind`` (an XSUB socket), receivers are reached at ``--connect`` (an XPUB socket):
subscriptions travel upstream unchanged, and each two-part message ``[stream, packet]`` travels downstream unless it
is dropped, with probability ``--drop``, from a seeded generator. It stops after ``--seconds`` or on Ctrl-C, and prints
how many messages it forwarded and dropped. For loss tests only: it never inspects a packet.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence

import zmq


def forward(bind: str, connect: str, drop: float, seed: int, seconds: float) -> tuple[int, int]:
    """Run the forwarder; returns (forwarded, dropped) messages."""
    rng = random.Random(seed)
    context = zmq.Context()
    upstream, downstream = context.socket(zmq.XSUB), context.socket(zmq.XPUB)
    for sock in (upstream, downstream):
        sock.setsockopt(zmq.LINGER, 0)
    upstream.bind(bind)
    downstream.connect(connect)
    poller = zmq.Poller()
    poller.register(upstream, zmq.POLLIN)
    poller.register(downstream, zmq.POLLIN)
    forwarded = dropped = 0
    deadline = time.monotonic() + seconds
    print(f"lossy_forwarder: {bind} -> {connect}, dropping {drop:.0%} (seed {seed})", file=sys.stderr, flush=True)
    try:
        while time.monotonic() < deadline:
            events = dict(poller.poll(100))
            if downstream in events:  # subscriptions, upstream
                upstream.send(downstream.recv())
            if upstream in events:
                parts = upstream.recv_multipart()
                if rng.random() < drop:
                    dropped += 1
                else:
                    downstream.send_multipart(parts)
                    forwarded += 1
    except KeyboardInterrupt:
        pass
    finally:
        upstream.close()
        downstream.close()
        context.term()
    return forwarded, dropped


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bind", required=True, help="endpoint the senders connect to")
    ap.add_argument("--connect", required=True, help="endpoint a receiver is bound to")
    ap.add_argument("--drop", type=float, default=0.1, help="probability of dropping a packet (default 0.1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=3600.0, help="stop after this long (default 3600)")
    args = ap.parse_args(argv)
    if not 0 <= args.drop <= 1:
        ap.error("--drop must be in [0, 1]")
    forwarded, dropped = forward(args.bind, args.connect, args.drop, args.seed, args.seconds)
    print(f"lossy_forwarder: forwarded {forwarded}, dropped {dropped}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
