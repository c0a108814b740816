#!/usr/bin/env python3
"""rss_sampler.py OUT.tsv -- until SIGTERM, sample every second the RSS of each running
proxy (ballast proxy, haproxy, nginx peer: master and workers summed, backend nginx
excluded) and write the peak per proxy, in MiB, to OUT.tsv on exit."""
import os, signal, sys, time

out = sys.argv[1]
peak = {}


def key_of(argv):
    """Row label of a proxy process, or None when it is not a proxy we measure."""
    if not argv:
        return None
    prog = os.path.basename(argv[0])
    # Any ballast build (BALLAST= may name a copy such as ballast-main) running the one-liner.
    if prog.startswith("ballast") and "proxy" in argv:
        threads = argv[argv.index("--threads") + 1] if "--threads" in argv else "1"
        return f"ballast-t{threads}"
    if prog == "haproxy" and "-f" in argv:
        return os.path.basename(argv[argv.index("-f") + 1]).removesuffix(".cfg")
    if prog.startswith("nginx") or argv[0].startswith("nginx:"):
        return None  # workers are matched through their master below
    return None


def sample():
    groups = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
            with open(f"/proc/{pid}/stat") as f:
                pgid = f.read().rsplit(")", 1)[1].split()[2]
            with open(f"/proc/{pid}/status") as f:
                rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        except (OSError, StopIteration, IndexError, ValueError):
            continue
        key = key_of(argv)
        if key is None and argv and os.path.basename(argv[0]) == "nginx" and "-c" in argv:
            conf = os.path.basename(argv[argv.index("-c") + 1])
            if conf.startswith("nginx-w"):
                groups.setdefault(pgid, ["", 0])[0] = conf.removesuffix(".conf")
        elif key:
            groups.setdefault(pgid, ["", 0])[0] = key
        groups.setdefault(pgid, ["", 0])[1] += rss
    for label, rss in groups.values():
        if label:
            peak[label] = max(peak.get(label, 0), rss)


def finish(*_):
    with open(out, "w") as f:
        for label, kib in sorted(peak.items()):
            f.write(f"{label}\t{kib / 1024:.1f}\n")
    sys.exit(0)


signal.signal(signal.SIGTERM, finish)
signal.signal(signal.SIGINT, finish)
while True:
    sample()
    # Once a second: each scan reads three files per process and takes a core for a few
    # milliseconds, a stall that the proxies' p99 feels (see start_prio in peers.sh).
    time.sleep(1.0)
