"""Running shards on a Dask cluster: ``--dask tcp://HOST:PORT`` or ``--dask local:N``.

Dask does the distribution: every shard is one task (``client.map``), a worker that
dies has its shards rescheduled by the scheduler, a shard that raises is retried
(``retries``), and ``as_completed`` drives the progress bar. Each task runs the
same backend code a local run does (:meth:`Backend.scan_shard`, the Cython
scanner with ``jobs`` threads), so the merged :class:`ShardResult` and hence the
report, JSON and exit code are those of a local run.

Workers need archverify installed and the store reachable (the filed dirs at the
same paths, or a Ceph client); :func:`check_workers` proves that on every worker
before any shard starts. A backend travels without its open handles
(:func:`verify.backends.base.portable`) and each worker keeps one copy of it (:func:`resident`), so a
Ceph connection serves all the shards a worker runs. ``check --dask`` builds its
stages on these (verify/cluster/check.py).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import Callable, Iterator

from .. import __version__
from ..backends import Backend, Shard
from ..backends.base import portable
from ..core.errors import ArchverifyError, ClusterError, UsageError
from ..core.summary import ShardResult, Summary

LOCAL = "local:"
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 2
SHARDS_PER_WORKER = 4  # default shards per store per worker: keeps every worker busy to the end
MAX_LOCAL_WORKERS = 256
# the scheduler serves health checks over HTTP even without a dashboard; on 8787 by default,
# which another cluster may hold: take any free port on loopback instead
NO_HTTP_PORT = {"dashboard": False, "dashboard_address": "127.0.0.1:0"}

ShardTask = Callable[[Backend, Shard, int], object]


def _quiet_dask() -> None:
    """Dask's own warnings (closed comms at shutdown, restarted workers) would bury our one line."""
    for name in ("distributed", "tornado"):
        logging.getLogger(name).setLevel(logging.ERROR)


def parse_local(address: str) -> int | None:
    """``local:N`` -> N; any other address -> None."""
    if not address.startswith(LOCAL):
        return None
    n = address[len(LOCAL):]
    if not n.isdigit() or not 1 <= int(n) <= MAX_LOCAL_WORKERS:
        raise UsageError(f"--dask {address}: expected local:N with N from 1 to {MAX_LOCAL_WORKERS} worker processes")
    return int(n)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _probe(address: str, timeout: float) -> None:
    """Reach the scheduler once with Dask's own comm layer before building a Client.

    A Client whose constructor times out leaves an object that complains (with a
    traceback) when it is collected at exit; a failed probe leaves nothing behind.
    """
    import asyncio

    from distributed.comm import connect as comm_connect

    async def knock():
        comm = await comm_connect(address, timeout=timeout)
        await comm.close()

    asyncio.run(knock())


@contextlib.contextmanager
def connect(address: str, timeout: float = DEFAULT_TIMEOUT) -> Iterator:
    """A connected ``distributed.Client`` with at least one worker, closed on exit.

    ``local:N`` starts a LocalCluster of N single-threaded worker processes on
    127.0.0.1 (no dashboard) for this run only.
    """
    n_local = parse_local(address)
    _quiet_dask()
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if n_local is not None:
            try:
                cluster = stack.enter_context(LocalCluster(
                    n_workers=n_local, threads_per_worker=1, processes=True, host="127.0.0.1",
                    dashboard_address=None, silence_logs=logging.ERROR, scheduler_kwargs=NO_HTTP_PORT,
                ))
            except Exception as e:
                raise ClusterError(f"cannot start a local Dask cluster of {n_local} workers: {_one_line(e)}") from None
            address = cluster.scheduler_address
        try:
            _probe(address, timeout)
            client = stack.enter_context(Client(address, timeout=timeout, set_as_default=False))
        except (OSError, TimeoutError) as e:
            raise ClusterError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s: "
                               f"{_one_line(e)}") from None
        except ValueError as e:
            raise UsageError(f"--dask {address}: not a scheduler address (tcp://HOST:PORT or local:N): {e}") from None
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (OSError, TimeoutError):
            raise ClusterError(f"the Dask scheduler at {address} has no workers (waited {timeout:g} s); "
                               f"start some with 'dask worker {address}'") from None
        yield client


def worker_count(client) -> int:
    return max(1, len(client.scheduler_info(n_workers=-1)["workers"]))


def _check_store(backend: Backend, version: str) -> str | None:
    """Runs on each worker: None when it can read the stores, else the one-line reason."""
    from .. import __version__

    if __version__ != version:  # other rules would give other findings than a local run
        return f"runs archverify {__version__}, this machine {version}; install the same version everywhere"
    try:
        resident(backend).validate()
    except ArchverifyError as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - reported as one line naming the worker
        return _one_line(e)
    return None


def check_workers(client, backend: Backend) -> None:
    """Every worker must import archverify and reach the stores, before any shard starts."""
    try:
        answers = client.run(_check_store, portable(backend), __version__)
    except Exception as e:  # noqa: BLE001 - e.g. archverify missing on a worker
        raise ClusterError(f"a Dask worker cannot run archverify ({_one_line(e)}); install it on every worker") from None
    bad = sorted((addr, msg) for addr, msg in answers.items() if msg)
    if bad:
        addr, msg = bad[0]
        more = f" (and {len(bad) - 1} more workers)" if len(bad) > 1 else ""
        raise ClusterError(f"Dask worker {addr}{more}: {msg}")


_resident: dict[str, Backend] = {}  # per worker process: one backend (and its connections) per store config


def resident(backend: Backend) -> Backend:
    """This worker's long-lived copy of ``backend``, so a Ceph connection serves every shard it runs."""
    key = f"{type(backend).__module__}.{type(backend).__qualname__}:{backend!r}"
    return _resident.setdefault(key, backend)


def on_worker(fn, *args):
    """``fn(*args)`` on a worker; store errors name the worker, so the operator knows which node lacks what."""
    try:
        return fn(*args)
    except ArchverifyError as e:
        from distributed import get_worker

        try:
            where = get_worker().address
        except ValueError:  # not on a worker (called directly)
            raise e from None
        raise type(e)(f"{e} (on Dask worker {where})") from None


def scan_task(backend: Backend, shard: Shard, jobs: int) -> ShardResult:
    """One shard on a worker."""
    return on_worker(resident(backend).scan_shard, shard, jobs)


def _label(shard: Shard) -> str:
    return f"{shard.store}[{shard.lo}:{shard.hi})"


def _bar(progress: bool | None, total: int, desc: str):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="shard", file=sys.stderr, leave=False, dynamic_ncols=True)


def submit_shards(client, backend: Backend, shards: list[Shard], jobs: int, task: ShardTask = scan_task,
                  retries: int = DEFAULT_RETRIES) -> list:
    """One Dask task per shard; the futures' results stay on the workers until asked for.

    ``task(backend, shard, jobs)`` must be a module-level function (it is pickled by
    reference). ``pure=False``: a shard is re-read on every run, never cached.
    """
    return client.map(task, [portable(backend)] * len(shards), shards, jobs=jobs, pure=False, retries=retries)


def as_finished(client, futures: list, shards: list[Shard], progress: bool | None = None,
                desc: str = "shards") -> Iterator[tuple[Shard, object]]:
    """Yields ``(shard, result)`` as shards finish anywhere in the cluster, with a shards done/total bar.

    A shard that fails for good raises its ArchverifyError, or a ClusterError; the
    remaining shards are cancelled.
    """
    from distributed import as_completed
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    shard_of = {f.key: s for f, s in zip(futures, shards)}
    bar = _bar(progress, len(futures), desc)
    try:
        for fut in as_completed(futures, loop=client.loop):
            shard = shard_of[fut.key]
            try:
                result = fut.result()
            except ArchverifyError:
                raise
            except KilledWorker:
                raise ClusterError(f"shard {_label(shard)} killed Dask workers repeatedly; see the workers' logs") from None
            except (FutureCancelledError, OSError) as e:
                raise ClusterError(f"lost the Dask cluster during shard {_label(shard)}: {_one_line(e)}") from None
            except Exception as e:  # noqa: BLE001 - a worker-side failure, one line
                raise ClusterError(f"shard {_label(shard)} failed on the Dask cluster: {_one_line(e)}") from None
            if bar is not None:
                bar.update(1)
            yield shard, result
    except BaseException:
        client.cancel(futures)  # stop the other shards now; on success the futures are simply released
        raise
    finally:
        if bar is not None:
            bar.close()


def run_shards(client, backend: Backend, shards: list[Shard], jobs: int, retries: int = DEFAULT_RETRIES,
               progress: bool | None = None) -> ShardResult:
    """Every shard scanned on the cluster, merged here."""
    desc = f"scanning ({backend.name}) on {worker_count(client)} Dask workers"
    futures = submit_shards(client, backend, shards, jobs, scan_task, retries)
    return ShardResult.merge_all(r for _, r in as_finished(client, futures, shards, progress, desc))


def scan(backend: Backend, address: str, jobs: int, progress: bool | None = None,
         shards_per_store: int | None = None, timeout: float = DEFAULT_TIMEOUT,
         retries: int = DEFAULT_RETRIES) -> Summary:
    """:func:`verify.ops.scan.scan` on a Dask cluster; same Summary, other machines."""
    backend.require_portable()
    t0 = time.monotonic()
    with connect(address, timeout) as client:
        check_workers(client, backend)
        per_store = shards_per_store or SHARDS_PER_WORKER * worker_count(client)
        result = run_shards(client, backend, backend.shards(per_store), jobs, retries, progress)
    return Summary.from_result(result, time.monotonic() - t0)
