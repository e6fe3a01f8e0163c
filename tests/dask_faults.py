"""A backend that kills its Dask worker once, as an OOM kill would: for the tests that a lost worker's
shard is recomputed elsewhere and the result stays exact."""

from __future__ import annotations

import contextlib
import dataclasses
import os


def killing(be, marker, method: str = "check_shard", victim: tuple = ("maps", 0)):
    """``be`` whose first ``method`` call on shard ``victim`` (store, lo) kills the process it runs in;
    ``marker`` (a file) then holds that process's pid, and the retry runs normally."""

    @dataclasses.dataclass
    class KillFirstAttempt(type(be)):
        marker: str = ""
        method: str = "check_shard"
        victim: tuple = ("maps", 0)

        def _maybe_die(self, method, shard):
            if method == self.method and (shard.store, shard.lo) == self.victim:
                try:
                    fd = os.open(self.marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
                except FileExistsError:
                    return  # the retry, on a live worker
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os._exit(9)

        def check_shard(self, shard, jobs, locator):
            self._maybe_die("check_shard", shard)
            return super().check_shard(shard, jobs, locator)

        def explain_shard(self, shard, jobs, records, width):
            self._maybe_die("explain_shard", shard)
            return super().explain_shard(shard, jobs, records, width)

    kept = {f.name: getattr(be, f.name) for f in dataclasses.fields(be) if f.init and not f.name.startswith("_")}
    return KillFirstAttempt(**kept, marker=str(marker), method=method, victim=victim)


@contextlib.contextmanager
def two_workers():
    """A real LocalCluster of two single-threaded worker processes on 127.0.0.1: (scheduler address, client)."""
    import logging

    from distributed import Client, LocalCluster

    from verify.cluster import shards as distributed

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=logging.ERROR,
                      scheduler_kwargs=distributed.NO_HTTP_PORT) as lc:
        with Client(lc, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=180)  # a loaded machine may take minutes to start them
            yield lc.scheduler_address, client
