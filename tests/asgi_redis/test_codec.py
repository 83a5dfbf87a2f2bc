"""`asgi_redis.codec`: the per-thread packer packs as ``msgpack.packb`` does (L-6)."""

from __future__ import annotations

import threading

import msgpack
import pytest

from asgi_redis.codec import Codec


def test_the_kept_packer_packs_as_packb_after_a_failure_and_in_every_thread() -> None:
    """Issue 20: `Codec.pack` reuses one msgpack packer per thread; its bytes are
    ``packb``'s, a packer that raised starts empty again, and threads never share one."""
    codec = Codec(None, 60)
    message = {"text": "\U0001f612", "bytes": b"\x00", "list": [1, (2, 3)], "n": None}
    expected = msgpack.packb(message, use_bin_type=True)
    assert codec.pack(message) == expected
    with pytest.raises(TypeError):
        codec.pack({"bad": [1, object()]})
    assert codec.pack(message) == expected
    assert codec.decode(codec.pack({"big": b"x" * 300_000})) == {"big": b"x" * 300_000}
    assert codec.pack(message) == expected

    results: list[bool] = []

    def pack_many(number: int) -> None:
        own = {"thread": number, "body": b"y" * (1000 * number)}
        results.append(
            all(codec.pack(own) == msgpack.packb(own, use_bin_type=True) for _ in range(500))
        )

    threads = [threading.Thread(target=pack_many, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [True] * 4
