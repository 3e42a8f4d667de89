"""The largest resident set of any process a command starts (Linux): ``python benchmarks/peak_memory.py -- make test``.

Every ``--every`` seconds it walks /proc for the command's descendants and keeps each one's VmHWM (the kernel's
high-water mark of its resident set, so a peak between two samples is not missed, only the last interval of a
process that exits). It prints the command's exit status, the ten largest processes, and their sum at the busiest
sample. ru_maxrss is not used: a child keeps its parent's high-water mark across exec, which would blame every
subprocess of pytest for pytest's own peak.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path


def _status(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _descendants(root: int) -> list[int]:
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = _status(int(entry)).get("PPid")
            if ppid:
                parent[int(entry)] = int(ppid)
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command after --, e.g. -- make test")
    start = time.time()
    child = subprocess.Popen(command)
    peaks: dict[int, tuple[int, str]] = {}
    busiest = 0
    while child.poll() is None:
        total = 0
        for pid in _descendants(child.pid):
            status = _status(pid)
            hwm, rss = (int(status.get(k, "0 kB").split()[0]) for k in ("VmHWM", "VmRSS"))
            total += rss
            if hwm > peaks.get(pid, (0, ""))[0]:
                peaks[pid] = (hwm, peaks.get(pid, (0, ""))[1] or _cmdline(pid)[:160])
        busiest = max(busiest, total)
        time.sleep(args.every)
    top = sorted(peaks.items(), key=lambda kv: -kv[1][0])[:10]
    print(f"\nexit {child.returncode} after {(time.time() - start) / 60:.1f} min; {len(peaks)} processes; "
          f"machine {os.cpu_count()} cores, {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB")
    print(f"largest process: {top[0][1][0] / 2**20:.2f} GiB" if top else "no process sampled")
    print(f"most resident at once (sum over processes): {busiest / 2**20:.2f} GiB")
    for pid, (hwm, cmd) in top:
        print(f"  {hwm / 2**20:6.2f} GiB  pid {pid}  {cmd}")
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
