"""fdatasync latency on this machine's disk with 1 and with N processes at once, each
appending a batch to its own file and fsyncing it: what a cluster's leader and its
followers do, all on one disk, for every batch of confirms.

    python -m warren.bench.fsync_contention [--procs 1,3] [--batch 45000] [--seconds 3]

Prints, per process count, each process's fsyncs per second and mean latency. With
``--prealloc`` the files are written with zeros first (overwrites need no journal commit).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time


def _writer(path: str, seconds: float, batch: int, prealloc: bool, out: mp.Queue) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        if prealloc:
            os.write(fd, b"\0" * (256 << 20))
            os.fsync(fd)
            os.lseek(fd, 0, os.SEEK_SET)
        data = os.urandom(batch)
        n, spent = 0, 0.0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            os.write(fd, data)
            t = time.monotonic()
            os.fdatasync(fd)
            spent += time.monotonic() - t
            n += 1
        out.put((n / seconds, spent / max(n, 1)))
    finally:
        os.close(fd)
        os.unlink(path)


def run(procs: int, seconds: float, batch: int, prealloc: bool, where: str) -> list[tuple[float, float]]:
    out: mp.Queue = mp.Queue()
    workers = [mp.Process(target=_writer, args=(os.path.join(where, f"fsync-{i}.dat"), seconds, batch,
                                                 prealloc, out)) for i in range(procs)]
    for w in workers:
        w.start()
    results = [out.get() for _ in workers]
    for w in workers:
        w.join()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--procs", default="1,3", help="comma list of process counts")
    ap.add_argument("--batch", type=int, default=45000, help="bytes appended before each fdatasync")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--prealloc", action="store_true")
    ap.add_argument("--dir", default=None, help="where the files go (default: a temp dir under /tmp)")
    args = ap.parse_args()
    where = args.dir or tempfile.mkdtemp(prefix="fsync-contention-")
    for procs in (int(p) for p in args.procs.split(",")):
        res = run(procs, args.seconds, args.batch, args.prealloc, where)
        rates = " / ".join(f"{r:.0f}" for r, _ in res)
        lat = " / ".join(f"{m * 1000:.3f}" for _, m in res)
        print(f"{procs} process(es), {args.batch} B per fdatasync{' (preallocated)' if args.prealloc else ''}:"
              f" fsyncs/s {rates}; mean ms {lat}")


if __name__ == "__main__":
    main()
