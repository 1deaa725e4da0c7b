#!/usr/bin/env python3
"""What one fdatasync costs on this machine: wall time, and CPU time of the thread that calls it.

A confirm of a persistent message waits for a synced write, so a backlog published with N confirms
outstanding pays at least one sync per N messages. On a VM each sync is a few requests to the
virtual disk (the write, then a cache flush), and each request's notification of the host stops
the calling vCPU: the sync costs CPU, not only waiting. This measures both, for group sizes like a
broker's group commit (writes over existing blocks, as a recycled write-ahead log does, and appends
that grow the file), so bounds on a rate can be computed from them (BENCHMARKS.md, issue 14).
Not a test: nothing is asserted.

    python3 scripts/sync-cost.py [DIR]      # DIR on the disk to measure [/var/tmp]
"""
import os
import resource
import sys
import time

ROUNDS = 3000


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(fd, buf, overwrite):
    """Mean CPU µs of a write alone, of a write plus fdatasync, and the median wall µs of a sync."""
    off = 0
    c0 = cpu()
    for _ in range(ROUNDS):
        os.pwrite(fd, buf, off) if overwrite else os.write(fd, buf)
        off += len(buf)
    write_cpu = (cpu() - c0) / ROUNDS * 1e6
    os.fsync(fd)
    if overwrite:
        off = 0
    else:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.fsync(fd)
    walls = []
    c0 = cpu()
    for _ in range(ROUNDS):
        os.pwrite(fd, buf, off) if overwrite else os.write(fd, buf)
        off += len(buf)
        t = time.perf_counter()
        os.fdatasync(fd)
        walls.append((time.perf_counter() - t) * 1e6)
    both_cpu = (cpu() - c0) / ROUNDS * 1e6
    walls.sort()
    return write_cpu, both_cpu, walls[len(walls) // 2]


def main():
    path = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "/var/tmp", "sync-cost.dat")
    print(f"{'kind':10} {'KiB/sync':>8} {'sync wall us (median)':>22} {'sync CPU us (mean)':>19}")
    try:
        for overwrite in (True, False):
            for kib in (1, 50, 100):
                flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC
                fd = os.open(path, flags, 0o644)
                buf = os.urandom(kib * 1024)
                if overwrite:
                    os.write(fd, b"\0" * (kib * 1024 * ROUNDS))
                    os.fsync(fd)
                write_cpu, both_cpu, wall = measure(fd, buf, overwrite)
                os.close(fd)
                kind = "overwrite" if overwrite else "append"
                print(f"{kind:10} {kib:8d} {wall:22.0f} {both_cpu - write_cpu:19.1f}")
    finally:
        if os.path.exists(path):
            os.unlink(path)


if __name__ == "__main__":
    main()
