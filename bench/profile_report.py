#!/usr/bin/env python3
"""profile_report.py BALLAST.report BALLAST.cpu HAPROXY.report HAPROXY.cpu -- the table
bench/profile.sh prints: each proxy's CPU per request split by component.

A .report file is `perf report --no-children --sort dso,sym --stdio` of a flat profile; a
.cpu file is profile.sh's line "NAME: N requests/s, CPU per request X µs (...)". A
component's share of the samples times the CPU per request gives its µs per request.
"""
import re
import sys

SAMPLE = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+\[([.k])\]\s+(.*)$")
CPU = re.compile(r"CPU per request ([\d.]+) µs")

# Rust crates (the first path segment of a symbol) and what they are.
CRATES = {
    "h2": "h2 crate (HTTP/2 frames, HPACK, streams)",
    "hyper": "hyper",
    "hyper_util": "hyper",
    "http": "http crate (header maps, URIs)",
    "httparse": "httparse",
    "tokio": "tokio runtime",
    "tokio_util": "tokio runtime",
    "bytes": "bytes",
    "ballast_proxy": "ballast",
    "ballast_core": "ballast",
    "ballast": "ballast",
}
ALLOC = re.compile(r"^(_?mi_|malloc|free|cfree|realloc|calloc|_int_|__libc_malloc|__libc_free)")
COPY = re.compile(r"^__(memmove|memcpy|memset|memcmp)")


def component(dso, kind, sym):
    """The component a sample's symbol belongs to."""
    if kind == "k":
        return "kernel"
    if dso == "haproxy":
        return "HAProxy's own code"
    if COPY.match(sym):
        return "memory copies (memmove, memcpy)"
    if ALLOC.match(sym):
        return "allocator"
    crate = sym.lstrip("<").split("::", 1)[0]
    if "::" in sym and crate in CRATES:
        return CRATES[crate]
    return "other user space (libc, core, std, ...)"


def load(report, cpu):
    """{component: share of samples in %} and the CPU µs per request."""
    shares = {}
    with open(report) as f:
        for line in f:
            m = SAMPLE.match(line)
            if m:
                pct, dso, kind, sym = float(m[1]), m[2], m[3], m[4].strip()
                c = component(dso, kind, sym)
                shares[c] = shares.get(c, 0.0) + pct
    with open(cpu) as f:
        m = CPU.search(f.read())
    if not shares or not m:
        sys.exit(f"profile_report.py: nothing to read in {report} or {cpu}")
    return shares, float(m[1])


def main(argv):
    if len(argv) != 5:
        sys.exit("usage: profile_report.py BALLAST.report BALLAST.cpu HAPROXY.report HAPROXY.cpu")
    (bs, bcpu), (hs, hcpu) = load(argv[1], argv[2]), load(argv[3], argv[4])
    names = sorted(set(bs) | set(hs), key=lambda c: -(bs.get(c, 0) * bcpu + hs.get(c, 0) * hcpu))
    print(f"{'component':42} {'ballast µs':>10} {'share':>6} {'HAProxy µs':>11} {'share':>6}")
    for c in names:
        b, h = bs.get(c, 0.0), hs.get(c, 0.0)
        print(f"{c:42} {b * bcpu / 100:10.2f} {b:5.1f}% {h * hcpu / 100:11.2f} {h:5.1f}%")
    print(f"{'total CPU per request':42} {bcpu:10.2f} {'':6} {hcpu:11.2f}   ({bcpu / hcpu:.2f}x HAProxy)")


if __name__ == "__main__":
    main(sys.argv)
