"""Read-ahead and write-behind threads: order kept, errors re-raised in the caller, queues bounded."""

from __future__ import annotations

import threading
import time

import pytest

from facecast.pipelines.background import Consumer, prefetched


def test_prefetched_keeps_order_and_runs_ahead_on_another_thread():
    threads = []

    def produce():
        for k in range(50):
            threads.append(threading.get_ident())
            yield k

    assert list(prefetched(produce(), depth=4)) == list(range(50))
    assert set(threads) == {threads[0]} and threads[0] != threading.get_ident()


def test_prefetched_stays_at_most_depth_ahead_and_stops_when_the_consumer_does():
    made = []

    def produce():
        for k in range(1000):
            made.append(k)
            yield k

    for item in prefetched(produce(), depth=3):
        if item == 5:
            time.sleep(0.2)  # the producer may run ahead, but only by the queue's depth
            assert len(made) <= 5 + 1 + 3 + 1
            break
    assert len(made) < 20


def test_prefetched_reraises_the_producer_error():
    def produce():
        yield 1
        raise OSError("disk gone")

    items = prefetched(produce())
    assert next(items) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(items)


def test_consumer_handles_every_item_in_order_and_reraises_a_failure():
    seen = []
    consumer = Consumer(seen.append, depth=2)
    for k in range(20):
        consumer.put(k)
    consumer.close()
    assert seen == list(range(20))

    def fail(item):
        if item == 3:
            raise ValueError("frame 3 could not be encoded")

    broken = Consumer(fail, depth=1)
    with pytest.raises(ValueError, match="frame 3"):
        for k in range(100):
            broken.put(k)
            time.sleep(0.001)
        broken.close()
