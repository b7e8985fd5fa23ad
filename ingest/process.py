"""``process_*`` metrics of this process, read from /proc (Linux; elsewhere none)."""

from __future__ import annotations

import os
import resource
from pathlib import Path

_PROC = Path("/proc/self")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = resource.getpagesize()


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        return None
    return None


_BOOT = _boot_time()


def process_metrics() -> dict[str, float]:
    """CPU seconds, resident memory, open and maximum file descriptors, start time (the
    Prometheus client conventions); nothing where /proc cannot be read."""
    try:
        stat = (_PROC / "stat").read_text()
        statm = (_PROC / "statm").read_text().split()
        fds = len(os.listdir(_PROC / "fd"))
    except OSError:
        return {}
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    utime, stime, start = int(fields[11]), int(fields[12]), int(fields[19])
    out = {
        "process_cpu_seconds_total": (utime + stime) / _TICKS,
        "process_resident_memory_bytes": float(int(statm[1]) * _PAGE),
        "process_open_fds": float(fds),
        "process_max_fds": float(resource.getrlimit(resource.RLIMIT_NOFILE)[0]),
    }
    if _BOOT is not None:
        out["process_start_time_seconds"] = _BOOT + start / _TICKS
    return out
