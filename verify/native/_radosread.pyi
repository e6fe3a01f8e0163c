"""Type stub of the check's pool I/O (verify/native/_radosread.pyx)."""

from typing import Iterable

from ._rados import IoCtx

def read_prefixes(ioctx: IoCtx, names: Iterable[bytes | str], lens: Iterable[int],
                  inflight: int = 256) -> list[tuple[bytes | None, int]]: ...
def read_whole(ioctx: IoCtx, names: Iterable[bytes | str], maxlen: int = ..., first: int = 0,
               whole: bool = True) -> list[tuple[bytes | None, int]]: ...
def stat_sizes(ioctx: IoCtx, names: Iterable[bytes | str]) -> list[tuple[int, int]]: ...
