#!/usr/bin/env python3
"""watch.py -- the two background watchers of bench/peers.sh, made cheap enough that the
proxies under test do not feel them.

  watch.py rss OUT.tsv        until SIGTERM, the peak memory of each running proxy
                              (ballast proxy, haproxy, an nginx peer with its workers
                              summed; the backends' nginx excluded), in MiB, kept in
                              OUT.tsv (rewritten whenever a peak rises, and on exit).
  watch.py nice ROOT NICE     while process ROOT lives, gives every descendant of ROOT
                              (its session's autogroup and each of its threads) the
                              priority NICE.

Both wake once a second. A full scan of /proc (three files per process, as `ps` does)
takes a core for a few milliseconds, and a stall of that length lands in the p99 of the
proxy sharing that core. So a process is read in full only while it is young (its first
few seconds: a forked child may still exec or call setsid), then only `listdir("/proc")`
and the few files of the processes watched are read. The memory figure is the kernel's
own high-water mark (VmHWM), so a peak between two wake-ups is not missed.
"""
import os
import signal
import sys
import time

# Seconds during which a new process is read again on every wake-up: until then its
# command line (exec) and session (setsid) may still change.
YOUNG = 3


class Proc:
    """What is known of one process: parent, command line, and how many wake-ups it has
    been seen on."""

    __slots__ = ("ppid", "argv", "seen")

    def __init__(self):
        self.ppid, self.argv, self.seen = 0, [], 0


def read_proc(pid, p):
    """Reads (again) the parent and command line of `pid` into `p`; False once the
    process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            p.argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except (OSError, IndexError):
        return False
    p.ppid = int(fields[1])
    return True


class ProcTable:
    """The running processes, refreshed once per wake-up: a new or young process is read
    in full, an older one costs nothing but its entry in `listdir("/proc")`."""

    def __init__(self):
        self.procs = {}

    def refresh(self):
        """Updates the table; returns the pids read in full this time (new or young)."""
        live = {int(name) for name in os.listdir("/proc") if name.isdigit()}
        for pid in self.procs.keys() - live:
            del self.procs[pid]
        fresh = []
        for pid in live:
            p = self.procs.get(pid)
            if p is None:
                p = self.procs[pid] = Proc()
            if p.seen < YOUNG:
                if not read_proc(pid, p):
                    del self.procs[pid]
                    continue
                fresh.append(pid)
            p.seen += 1
        return fresh

    def descends_from(self, pid, root):
        """Whether `pid` is a descendant of `root` (not `root` itself)."""
        seen = set()
        q = self.procs[pid].ppid
        while q > 1 and q not in seen:
            if q == root:
                return True
            seen.add(q)
            parent = self.procs.get(q)
            if parent is None:
                return False
            q = parent.ppid
        return False


def proxy_label(argv):
    """Row label of a proxy process, or None when it is not a proxy we measure. nginx
    processes are labelled through their group's master (`nginx -c nginx-wN.conf`)."""
    if argv and argv[0].startswith("nginx: "):
        # nginx retitles itself: "nginx: master process nginx -c ..." in one string, or
        # "nginx: worker process".
        argv = argv[0].split()[3:]
    if not argv:
        return None
    prog = os.path.basename(argv[0])
    # Any ballast build (BALLAST= may name a copy such as ballast-main) running the one-liner.
    if prog.startswith("ballast") and "proxy" in argv:
        threads = argv[argv.index("--threads") + 1] if "--threads" in argv else "1"
        return f"ballast-t{threads}"
    if prog == "haproxy" and "-f" in argv:
        return os.path.basename(argv[argv.index("-f") + 1]).removesuffix(".cfg")
    if prog == "nginx" and "-c" in argv:
        conf = os.path.basename(argv[argv.index("-c") + 1])
        if conf.startswith("nginx-w"):
            return conf.removesuffix(".conf")
    return None


def high_water_kib(pid):
    """The process's peak resident set so far (VmHWM), in KiB; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration, IndexError, ValueError):
        return 0


def watch_rss(out):
    """`watch.py rss OUT.tsv`: see the module's doc."""
    table, peak = ProcTable(), {}

    def write():
        # Whole, then renamed: a reader never sees half a file.
        with open(out + ".new", "w") as f:
            for label, kib in sorted(peak.items()):
                f.write(f"{label}\t{kib / 1024:.1f}\n")
        os.replace(out + ".new", out)

    def finish(*_):
        write()
        sys.exit(0)

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    write()
    while True:
        table.refresh()
        # A proxy and its direct children (nginx's workers) count as one.
        groups = {pid: (label, [pid]) for pid, p in table.procs.items() if (label := proxy_label(p.argv))}
        for pid, p in table.procs.items():
            if p.ppid in groups:
                groups[p.ppid][1].append(pid)
        before = dict(peak)
        for label, pids in groups.values():
            kib = sum(high_water_kib(pid) for pid in pids)
            peak[label] = max(peak.get(label, 0), kib)
        if peak != before:
            # Kept current, so the figures survive a watcher killed outright.
            write()
        time.sleep(1.0)


def watch_nice(root, nice):
    """`watch.py nice ROOT NICE`: see the module's doc."""
    table, reniced, below_root = ProcTable(), set(), {}
    while True:
        try:
            os.kill(root, 0)
        except ProcessLookupError:
            return
        fresh = set(table.refresh())
        # Whether a process descends from ROOT, decided while it is young (its parent
        # read again each time) and kept after.
        below_root = {pid: below_root[pid] for pid in table.procs if pid in below_root and pid not in fresh}
        for pid in fresh:
            below_root[pid] = table.descends_from(pid, root)
        for pid in [pid for pid, below in below_root.items() if below]:
            if pid in fresh:
                # The session's autogroup: the process may still have to call setsid().
                try:
                    with open(f"/proc/{pid}/autogroup", "w") as f:
                        f.write(str(nice))
                except OSError:
                    pass
            try:
                tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
            except OSError:
                continue
            for tid in tids:
                if tid in reniced:
                    continue
                try:
                    os.setpriority(os.PRIO_PROCESS, tid, nice)
                    reniced.add(tid)
                except OSError:
                    pass
        time.sleep(1.0)


def main(argv):
    if len(argv) == 3 and argv[1] == "rss":
        watch_rss(argv[2])
    elif len(argv) == 4 and argv[1] == "nice":
        try:
            root, nice = int(argv[2]), int(argv[3])
        except ValueError:
            sys.exit(f"watch.py nice: ROOT and NICE must be integers, got {argv[2]!r} {argv[3]!r}")
        if not -20 <= nice <= 19:
            sys.exit(f"watch.py nice: NICE must be within -20..19, got {nice}")
        watch_nice(root, nice)
    else:
        sys.exit("usage: watch.py rss OUT.tsv | watch.py nice ROOT NICE")


if __name__ == "__main__":
    main(sys.argv)
