"""Batch engines: run :class:`Task` s in worker processes, locally or on Ray.

Both engines run the same worker function, :func:`execute`, which never raises for a
failing input: it returns a :class:`TaskOutcome` with the error's type and one-line
message. Only a dying worker process is an engine matter:

- ``local``: a ``spawn`` :class:`~concurrent.futures.ProcessPoolExecutor` of ``workers``
  processes with ``2 * workers`` tasks submitted (none waits for the batch process).
  A worker that dies breaks the pool and fails every submitted task with it. If only
  one was submitted it is marked failed (``WorkerCrashed``); otherwise they are rerun
  one at a time on a single-process pool, where a break names its culprit, and the
  innocent ones complete. Then a new pool takes the rest.
- ``ray``: one Ray task per input with ``max_retries``; Ray reruns a task whose worker
  died and reports ``WorkerCrashed`` when the retries run out.

Per worker process the job's model is loaded once per (job, options) and kept
(:func:`cached_model`), and torch / OpenMP use ``cores // workers`` threads.
"""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from facecast.pipelines.allocator import limit_malloc_arenas
from facecast.pipelines.batch.jobs import BatchUsageError, Job, options_fingerprint
from facecast.pipelines.batch.manifest import is_disk_full, one_line

ENGINES = ("local", "ray")
CRASH_ERROR = "WorkerCrashed"
CRASH_MESSAGE = "the worker process died while processing this input (native crash, out of memory or killed)"


@dataclass(frozen=True)
class Task:
    """One input for one job: ``work_dir`` is the temporary folder the job writes into."""

    key: str
    input_path: str
    work_dir: str
    job: Job
    options: object
    threads: int


@dataclass(frozen=True)
class TaskOutcome:
    """What became of a task; ``outputs`` are file names inside its ``work_dir``."""

    key: str
    ok: bool
    outputs: tuple[str, ...] = ()
    frames: int = 0
    seconds: float | None = None
    error_type: str | None = None
    error_message: str | None = None
    worker: str | None = None
    disk_full: bool = False  # the job failed for want of disk space, not because of its input


#: Engine callbacks: called in the batch process when a task is handed out / finished.
OnStart = Callable[[Task], None]
OnDone = Callable[[TaskOutcome], None]


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def limit_threads(threads: int) -> None:
    """Cap OpenMP/MKL threads (for libraries not loaded yet) and torch's (when loaded)."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


#: This process's loaded models, by (job name, fingerprint of all its options).
_MODELS: dict[tuple[str, str], object] = {}


def cached_model(job: Job, options: object) -> object:
    """``job.load(options)``, loaded once per worker process and (job, options)."""
    key = (job.name, options_fingerprint(job, options, outputs_only=False))
    if key not in _MODELS:
        _MODELS.clear()  # one model at a time: a worker serves one batch
        _MODELS[key] = job.load(options)
    return _MODELS[key]


def execute(task: Task) -> TaskOutcome:
    """Run ``task`` in this process (a worker); job errors become a failed outcome."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    work = Path(task.work_dir)
    start = time.perf_counter()
    try:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        limit_threads(task.threads)
        model = cached_model(task.job, task.options)
        limit_threads(task.threads)  # loading may have imported torch
        result = task.job.run(Path(task.input_path), work, task.options, model)
        missing = [name for name in result.outputs if not (work / name).is_file()]
        if missing or not result.outputs:
            raise RuntimeError(f"job {task.job.name} did not write {missing or 'any output'}")
    except Exception as exc:  # a failing input must not stop the batch
        return TaskOutcome(task.key, False, seconds=time.perf_counter() - start,
                           error_type=type(exc).__name__,
                           error_message=one_line(str(exc) or type(exc).__name__), worker=worker,
                           disk_full=is_disk_full(exc))
    return TaskOutcome(task.key, True, tuple(result.outputs), int(result.frames),
                       float(result.seconds), worker=worker)


def check_picklable(job: Job, options: object) -> None:
    """Raise ``TypeError`` unless ``job`` and ``options`` can be sent to worker processes."""
    try:
        pickle.dumps((job, options))
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise TypeError(f"job {job.name} cannot be sent to worker processes: its functions must "
                        f"be module-level (no lambdas or closures) ({exc})") from exc


def crash_outcome(task: Task, detail: str = "") -> TaskOutcome:
    """The outcome of a task whose worker process died."""
    return TaskOutcome(task.key, False, error_type=CRASH_ERROR,
                       error_message=one_line(f"{CRASH_MESSAGE}{detail}"))


def _init_worker(threads: int, parent: int) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the batch process
    limit_malloc_arenas()                         # answers it and ends the workers (no traceback from each)
    limit_threads(threads)
    _die_with_parent(parent)


def _die_with_parent(parent: int) -> None:
    """On Linux, have the kernel kill this worker when the batch process dies (``kill -9``).

    Without it, orphaned workers would finish their task into a temporary folder
    that a rerun already uses.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def run_local(tasks: Sequence[Task], workers: int, on_start: OnStart, on_done: OnDone) -> None:
    """Run ``tasks`` on a local process pool of ``workers`` processes (see module notes)."""
    queue, suspects = deque(tasks), deque()
    while queue or suspects:
        if suspects:  # one at a time: a break names its culprit
            for culprit in _drain(suspects, 1, 1, on_start, on_done):
                on_done(crash_outcome(culprit))
            continue
        broken = _drain(queue, workers, 2 * workers, on_start, on_done)
        if len(broken) == 1:
            on_done(crash_outcome(broken[0]))
        else:
            suspects.extend(broken)


def _drain(queue: deque[Task], workers: int, window: int, on_start: OnStart,
           on_done: OnDone) -> list[Task]:
    """Run tasks from ``queue`` on a fresh pool, ``window`` at a time, until done or broken.

    Returns the tasks that were submitted when the pool broke (none if it did not).
    """
    import multiprocessing

    threads = max(1, available_cores() // workers)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(threads, os.getpid()))
    running: dict[Future, Task] = {}
    broken: list[Task] = []
    try:
        while (queue or running) and not broken:
            while queue and len(running) < window:
                task = queue.popleft()
                on_start(task)
                running[pool.submit(execute, _with_threads(task, threads))] = task
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                task = running.pop(future)
                try:
                    on_done(future.result())
                except BrokenProcessPool:
                    broken.append(task)
        if broken:  # the others in flight fail with the same break, unless they just finished
            wait(running)
            for future, task in running.items():
                if isinstance(future.exception(), BrokenProcessPool):
                    broken.append(task)
                else:
                    on_done(future.result())
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, SIGTERM: stop now, not after the inputs in flight
        _end_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return broken


def _end_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate this process's worker processes (the pool's: the batch process starts no others); the inputs
    they held stay unfinished, for a rerun."""
    import multiprocessing

    pool.shutdown(wait=False, cancel_futures=True)
    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(timeout=5)


def _with_threads(task: Task, threads: int) -> Task:
    return Task(task.key, task.input_path, task.work_dir, task.job, task.options, threads)


def run_ray(tasks: Sequence[Task], workers: int, address: str | None, max_retries: int,
            on_start: OnStart, on_done: OnDone) -> None:
    """Run ``tasks`` as Ray tasks (one CPU each) on ``address`` or on a new local instance.

    An instance that is already initialised in this process (``ray.init`` by the caller)
    is used as it is and left running.
    """
    try:
        import ray
    except ImportError as exc:
        raise BatchUsageError("the ray engine needs Ray: pip install 'facecast[ray]'") from exc
    started = not ray.is_initialized()
    if started:
        _start_ray(ray, address, workers)
    try:
        cores = int(ray.cluster_resources().get("CPU", workers))
        threads = 1 if address else max(1, available_cores() // workers)
        remote = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(execute)
        _ray_loop(ray, remote, deque(tasks), max(2, 2 * cores), threads, on_start, on_done)
    finally:
        if started:
            ray.shutdown()


#: seconds to wait for a Ray cluster's port to answer before saying it cannot be reached
RAY_CONNECT_TIMEOUT = 5.0


def check_reachable(address: str) -> None:
    """:class:`BatchUsageError` at once when ``address`` (``HOST:PORT``, or ``ray://HOST:PORT``) takes no TCP
    connection within :data:`RAY_CONNECT_TIMEOUT` (``ray.init`` would retry for minutes)."""
    import socket

    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not port.isdigit() or not host:
        return  # "auto" and other forms Ray resolves itself
    try:
        with socket.create_connection((host, int(port)), timeout=RAY_CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        raise BatchUsageError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc} (is it running? "
                              "`ray start --head` prints the address)") from None


def _start_ray(ray, address: str | None, workers: int) -> None:
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise BatchUsageError(f"cannot start or reach Ray at {address or 'a local instance'}: "
                              f"{one_line(str(exc))}") from exc


def _ray_loop(ray, remote, queue: deque[Task], window: int, threads: int,
              on_start: OnStart, on_done: OnDone) -> None:
    """Keep ``window`` tasks submitted; report each as it finishes."""
    running: dict = {}
    while queue or running:
        while queue and len(running) < window:
            task = queue.popleft()
            on_start(task)
            running[remote.remote(_with_threads(task, threads))] = task
        ready, _ = ray.wait(list(running), num_returns=1)
        for ref in ready:
            task = running.pop(ref)
            try:
                on_done(ray.get(ref))
            except ray.exceptions.WorkerCrashedError as exc:
                on_done(crash_outcome(task, f" (Ray retries exhausted: {type(exc).__name__})"))
            except ray.exceptions.RayError as exc:
                cause = getattr(exc, "cause", None) or exc
                on_done(TaskOutcome(task.key, False, error_type=type(cause).__name__,
                                    error_message=one_line(str(cause))))
