"""Batch work on a Dask cluster: ``--workers N`` (a local cluster of N one-thread processes) or
``--scheduler ADDRESS`` (an existing ``dask.distributed`` cluster) on simulate, predict, calibrate, design and the
benchmark harness.

The work is cut into chunks that the one-machine path would also compute one by one (so the answers are the
same), sent with ``client.map`` and gathered in input order. Dask reruns a chunk whose worker died (the
scheduler's ``allowed-failures``) and polyinv retries a chunk that raised (``retries``); the caller writes
nothing until every chunk is in. Without a cluster, :func:`map_chunks` runs the chunks here, in order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

from polyinv.errors import PolyinvError

#: times a chunk that raised is sent again before the command fails
RETRIES = 2
#: one BLAS/OpenMP thread per worker process: a worker is one core's worth of work
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Cluster:
    """Where chunks run: ``workers`` local processes or the cluster at ``scheduler`` (one of the two)."""

    workers: int | None = None
    scheduler: str | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and self.scheduler is not None:
            raise PolyinvError(
                "--workers and --scheduler exclude each other (a local or an existing cluster)"
            )
        if self.workers is not None and self.workers < 1:
            raise PolyinvError(f"--workers must be at least 1, got {self.workers}")

    @property
    def on(self) -> bool:
        return self.workers is not None or self.scheduler is not None


def add_arguments(parser) -> None:
    """The ``--workers`` / ``--scheduler`` options of a command (argparse)."""
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="run the work on a local Dask cluster of N processes",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run the work on an existing dask.distributed cluster (e.g. tcp://host:8786)",
    )


def cluster_of(args) -> Cluster:
    return Cluster(getattr(args, "workers", None), getattr(args, "scheduler", None))


@contextlib.contextmanager
def client(cluster: Cluster) -> Iterator:
    """A ``distributed.Client`` on the cluster, closed (and a local cluster shut down) on leaving."""
    import dask
    from distributed import Client, LocalCluster

    if cluster.scheduler is not None:
        try:
            c = Client(cluster.scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise PolyinvError(f"--scheduler {cluster.scheduler}: cannot connect ({exc})") from None
        with c:
            yield c
        return
    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_ENV}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ, "logging.distributed": "error"}):
        with (
            LocalCluster(
                n_workers=cluster.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=40,  # logging.ERROR
            ) as local,
            Client(local) as c,
        ):
            yield c


def map_chunks(
    fn: Callable,
    chunks: Sequence,
    cluster: Cluster | None = None,
    *,
    sizes: Sequence[int] | None = None,
    desc: str = "chunks",
    unit: str = "row",
    progress: bool = True,
    shared: dict | None = None,
) -> list:
    """``[fn(chunk, **shared) for chunk in chunks]``, here or on the cluster, in input order. ``sizes``: the
    rows of each chunk (for the progress bar); ``shared``: large arguments every chunk needs (a model), sent to
    the workers once."""
    shared = shared or {}
    sizes = list(sizes) if sizes is not None else [1] * len(chunks)
    if cluster is None or not cluster.on:
        out = []
        with tqdm(total=sum(sizes), desc=desc, unit=unit, disable=not progress) as bar:
            for chunk, size in zip(chunks, sizes, strict=True):
                out.append(fn(chunk, **shared))
                bar.update(size)
        return out
    from distributed import as_completed

    with client(cluster) as c, tqdm(total=sum(sizes), desc=desc, unit=unit, disable=not progress) as bar:
        # a task that returns the object, not scatter: if every worker holding it dies, the scheduler can
        # compute it again from the task (scattered data would be lost and its chunks cancelled)
        sent = {k: c.submit(_same, v, pure=False) for k, v in shared.items()}
        futures = c.map(fn, list(chunks), retries=RETRIES, pure=False, **sent)
        place = {f.key: i for i, f in enumerate(futures)}
        out = [None] * len(futures)
        # each result is fetched as its chunk finishes, while the others compute (not all at the end), and
        # put in its input place
        for future in as_completed(futures):
            if future.status == "error":
                exc = future.exception()
                raise PolyinvError(f"a chunk failed on the cluster after {RETRIES} retries: {exc}") from None
            i = place[future.key]
            out[i] = future.result()
            future.release()  # the worker may drop it now
            bar.update(sizes[i])
        return out


@contextlib.contextmanager
def parallel_map(cluster: Cluster | None) -> Iterator[Callable | None]:
    """A map-like callable ``(fn, items) -> list`` that runs on the cluster, results in input order, for work
    whose items the one-machine path also computes one by one: scipy's ``least_squares(workers=...)`` (its
    finite-difference columns) and a multi-start's starting points. None without a cluster (the caller's own
    loop). One client serves every call inside the block."""
    if cluster is None or not cluster.on:
        yield None
        return
    with client(cluster) as c:

        def run(fn: Callable, items) -> list:
            futures = c.map(fn, list(items), retries=RETRIES, pure=False)
            try:
                return c.gather(futures)
            except PolyinvError:  # the work's own one-line error (bad input found in a task)
                raise
            except Exception as exc:  # a task that raised on every retry: one line, nothing written
                raise PolyinvError(f"a task failed on the cluster after {RETRIES} retries: {exc}") from None

        yield run


def apply(workers: Callable | None, fn: Callable, items: Sequence) -> list:
    """``[fn(item) for item in items]``, or on a cluster's map from :func:`parallel_map` (the same answers)."""
    return [fn(item) for item in items] if workers is None else workers(fn, list(items))


def _same(value):
    return value


def row_chunks(n: int, rows: int) -> list[tuple[int, int]]:
    """(start, stop) of consecutive chunks of ``rows`` rows covering ``n``."""
    return [(lo, min(lo + rows, n)) for lo in range(0, n, rows)]
