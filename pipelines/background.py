"""Work beside the main thread: reading ahead of a consumer, and a consumer behind a producer.

Decoding (PyAV), resizing and drawing (OpenCV) and encoding release the GIL, so on two cores
they overlap with MediaPipe and the fit. Both helpers bound their queues (memory stays flat)
and re-raise a worker's exception in the caller.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_DONE = object()


def prefetched(items: Iterable[T], depth: int = 8) -> Iterator[T]:
    """``items`` produced by a background thread, at most ``depth`` ahead of the consumer.

    Stopping early (``break``, an exception, ``close()``) stops the producer after its current item.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put((_DONE, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            slots.put((_DONE, exc))

    worker = threading.Thread(target=produce, name="facecast-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = slots.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                slots.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join()
        close = getattr(items, "close", None)  # a generator: run its cleanup (files, containers) now
        if close is not None:
            close()


class Consumer(Generic[T]):
    """Calls ``handle(item)`` on a background thread for every :meth:`put` item, in order.

    At most ``depth`` items wait. :meth:`close` waits for the queue to drain and re-raises the
    first exception ``handle`` raised (later items are then dropped); so does the next :meth:`put`.
    """

    def __init__(self, handle: Callable[[T], None], depth: int = 8) -> None:
        self._handle = handle
        self._slots: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="facecast-consumer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._slots.get()
            if item is _DONE:
                return
            if self._error is None:
                try:
                    self._handle(item)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                    self._error = exc

    def put(self, item: T) -> None:
        """Queue ``item`` (blocks while ``depth`` items wait)."""
        if self._error is not None:
            raise self._error
        self._slots.put(item)

    def close(self) -> None:
        """Finish every queued item, stop the thread, re-raise a failure."""
        if self._thread.is_alive():
            self._slots.put(_DONE)
            self._thread.join()
        if self._error is not None:
            raise self._error
