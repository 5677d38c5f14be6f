"""Several batches at once on a CPU: one Python thread per batch, each on its own cores.

On a CPU, one batch on all T cores leaves cores waiting at every layer's barrier,
and decoding the next batch then competes with the trunk for the same cores.
:func:`run_in_streams` instead runs ``streams`` threads, each taking the next
whole batch from one shared list, decoding it (Pillow and libspng release the
GIL) and running it with ``threads_per_stream`` intra-op threads. Decoding then
fills the cores whatever the trunk leaves idle, and no core waits for another.
On 2 cores, 2 streams of 1 thread run the AlexNet trunk alone 4% faster than 1
stream of 2 threads, and a whole folder evaluation 1.2x faster
(``benchmarks/bench_dirs.py``).

A batch always runs on ``threads_per_stream`` threads, whichever thread picks
it, so its float32 results do not depend on the order the threads finish in.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import torch

Batch = TypeVar("Batch")
Result = TypeVar("Result")

#: Most batches in flight on a CPU by default: each holds its activations in memory.
MAX_AUTO_STREAMS = 4


def auto_streams(device: torch.device, threads: int | None = None) -> int:
    """Batches to run at once: one per intra-op thread on a CPU (at most :data:`MAX_AUTO_STREAMS`), else 1."""
    if device.type != "cpu":
        return 1
    threads = torch.get_num_threads() if threads is None else threads
    return max(1, min(threads, MAX_AUTO_STREAMS))


class SharedBatches:
    """Batches of indices handed out one at a time to several DataLoaders (thread-safe).

    Passed as each loader's ``batch_sampler``: a loader asks for its next batch only
    when it needs one, so a fast stream simply takes more of them.
    """

    def __init__(self, batches: Sequence[Sequence[int]]):
        self._it = iter(list(batches))
        self._lock = threading.Lock()

    def __iter__(self) -> SharedBatches:
        return self

    def __next__(self) -> Sequence[int]:
        with self._lock:
            return next(self._it)


def run_in_streams(batches: Sequence[Sequence[int]], make_loader: Callable[[Iterable], Iterable[Batch]],
                   work: Callable[[Batch], Result], streams: int,
                   threads_per_stream: int = 1) -> Iterator[Result]:
    """``work(batch)`` for every batch, ``streams`` at a time; results yielded in the calling thread.

    Args:
        batches: lists of dataset indices.
        make_loader: ``batch_sampler -> iterable of batches`` (a DataLoader over the dataset).
        work: runs one loaded batch (under ``torch.inference_mode``, on ``threads_per_stream`` threads).
        streams: threads; each owns a loader over the shared batches.
        threads_per_stream: intra-op threads of each stream.
    Yields:
        each batch's result as soon as it is done (in completion order, not batch order).
    Raises:
        whatever ``work`` or a loader raised, after every stream has stopped.
    """
    shared = SharedBatches(batches)
    done: queue.Queue = queue.Queue()
    stop = threading.Event()
    _END = object()

    def stream() -> None:
        try:
            torch.set_num_threads(threads_per_stream)  # this thread's own OpenMP team size
            with torch.inference_mode():
                for batch in make_loader(shared):
                    if stop.is_set():
                        break
                    done.put((work(batch), None))
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            done.put((None, exc))
        finally:
            done.put((_END, None))

    caller_threads = torch.get_num_threads()
    threads = [threading.Thread(target=stream, name=f"lpips-stream-{k}", daemon=True) for k in range(streams)]
    for t in threads:
        t.start()
    running, error = streams, None
    try:
        while running:
            result, exc = done.get()
            if result is _END:
                running -= 1
            elif exc is not None:
                error = error or exc
                stop.set()
            elif error is None:
                yield result
    finally:
        stop.set()  # the caller stopped early (an error, or it closed the generator)
        for t in threads:
            t.join()
        torch.set_num_threads(caller_threads)
    if error is not None:
        raise error
