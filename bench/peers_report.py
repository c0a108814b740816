#!/usr/bin/env python3
"""peers_report.py OUT -- one table from bench/peers.sh's harness runs: every row's RPS,
p50, p99 and peak RSS, and ballast's ratios to HAProxy with the same thread count and
protocol (hetero: to HAProxy leastconn) from the same invocation. When a mode ran more
than once (RUNS=N: directories NAME.r1, NAME.r2, ...), a second table gives, per ballast
row, each run's ratios and their median."""
import csv, glob, os, statistics, sys

out = sys.argv[1]
rows = []
# run -> the rows of its bracket run (HAProxy again, right after ballast).
after = {}
STEADY = 0.10


def base_of(run):
    """The mode's directory name without its repeat suffix: main-t2.r3 -> main-t2."""
    name, dot, rep = run.rpartition(".r")
    return name if dot and rep.isdigit() else run


for tsv in sorted(glob.glob(os.path.join(out, "*", "summary.tsv"))):
    run = os.path.basename(os.path.dirname(tsv))
    if run.startswith("after-"):
        after[run.removeprefix("after-")] = list(csv.DictReader(open(tsv), delimiter="\t"))
        continue
    rss = {}
    rss_file = os.path.join(out, f"rss-{run}.tsv")
    if os.path.exists(rss_file):
        for line in open(rss_file):
            label, mib = line.split("\t")
            rss[label] = mib.strip()
    for r in csv.DictReader(open(tsv), delimiter="\t"):
        r["run"] = run
        label = r["row"].split("@")[0]
        if label.startswith("ballast"):
            label = "ballast-t" + ("2" if base_of(run).endswith("t2") else "1")
        r["rss_mib"] = rss.get(label, "-")
        rows.append(r)


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def ref_for(r):
    """The HAProxy row(s) ballast is compared with: (before, after or None)."""
    if r["mode"] == "hetero":
        want = "haproxy-nt1@leastconn"
    else:
        want = "haproxy-nt2" if base_of(r["run"]).endswith("t2") else "haproxy-nt1"
    match = lambda c: c["row"] == want and c["proto"] == r["proto"]
    before = next((c for c in rows if c["run"] == r["run"] and match(c)), None)
    later = next((c for c in after.get(r["run"], []) if match(c)), None)
    return before, later


def mean_of(before, later, field):
    """The reference value: the mean over the HAProxy rows that have it."""
    vals = [num(c[field]) for c in (before, later) if c is not None and num(c[field])]
    return sum(vals) / len(vals) if vals else None


hdr = ["run", "row", "proto", "rps", "p50_ms", "p99_ms", "err", "rss_mib", "rps/haproxy", "p99/haproxy", "drift", "bg/fg/st%"]
table = [hdr]
# (mode directory, row, proto) -> [(rps ratio, p99 ratio, drift or None)] over the repeated runs.
repeats = {}
for r in rows:
    ratio_rps = ratio_p99 = drift = "-"
    if r["row"].startswith("ballast"):
        before, later = ref_for(r)
        ref_rps, ref_p99 = mean_of(before, later, "rps"), mean_of(before, later, "p99_ms")
        if ref_rps and num(r["rps"]):
            ratio_rps = f"{num(r['rps']) / ref_rps:.2f}"
        if ref_p99 and num(r["p99_ms"]):
            ratio_p99 = f"{num(r['p99_ms']) / ref_p99:.2f}"
        moved = None
        if before is not None and later is not None and num(before["rps"]) and num(later["rps"]):
            moved = num(later["rps"]) / num(before["rps"])
            drift = f"{moved:.2f}"
        if ratio_rps != "-" and ratio_p99 != "-":
            key = (base_of(r["run"]), r["row"], r["proto"])
            repeats.setdefault(key, []).append((float(ratio_rps), float(ratio_p99), moved))
    table.append([r["run"], r["row"], r["proto"], r["rps"], r["p50_ms"], r["p99_ms"], r["errors"],
                  r["rss_mib"], ratio_rps, ratio_p99, drift, r["bg/fg/st%"]])


def print_table(table):
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))


print_table(table)
if any(len(v) > 1 for v in repeats.values()):
    print()
    print("ballast ÷ HAProxy per run (rps ratio / p99 ratio), and the median over the runs:")
    med = [["mode", "row", "proto", "runs", "median rps/haproxy", "median p99/haproxy", "steady runs",
            "steady median rps/p99", "each run (rps/p99, drift)"]]
    for (base, row, proto), vals in sorted(repeats.items()):
        steady = [v for v in vals if v[2] is not None and abs(v[2] - 1) <= STEADY]
        steady_med = (f"{statistics.median(v[0] for v in steady):.2f}/{statistics.median(v[1] for v in steady):.2f}"
                      if steady else "-")
        each = " ".join(f"{a:.2f}/{b:.2f}" + (f" ({d:.2f})" if d is not None else "") for a, b, d in vals)
        med.append([base, row, proto, len(vals), f"{statistics.median(v[0] for v in vals):.2f}",
                    f"{statistics.median(v[1] for v in vals):.2f}", len(steady), steady_med, each])
    print_table(med)
