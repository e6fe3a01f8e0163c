"""The page cache, for cold-cache figures: empty it (root only) and see how much was read from disk."""

from __future__ import annotations

import os


def drop_caches() -> bool:
    """Writes dirty pages, then empties the page, dentry and inode caches: True when it worked."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


def disk_kb() -> int:
    """KiB read from block devices since boot (/proc/vmstat pgpgin): a "warm" run that reads is not warm."""
    with open("/proc/vmstat") as fh:
        for line in fh:
            if line.startswith("pgpgin "):
                return int(line.split()[1])
    return 0
