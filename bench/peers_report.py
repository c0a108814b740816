#!/usr/bin/env python3
"""peers_report.py OUT -- one table from bench/peers.sh's harness runs: every row's RPS,
p50, p99 and peak RSS, and ballast's ratios to HAProxy with the same thread count and
protocol (hetero: to HAProxy leastconn) from the same invocation. When a mode ran more
than once (RUNS=N: directories NAME.r1, NAME.r2, ...), a second table gives, per ballast
row, each run's ratios and their median."""
import csv, glob, os, statistics, sys

out = sys.argv[1]
rows = []


def base_of(run):
    """The mode's directory name without its repeat suffix: main-t2.r3 -> main-t2."""
    name, dot, rep = run.rpartition(".r")
    return name if dot and rep.isdigit() else run


for tsv in sorted(glob.glob(os.path.join(out, "*", "summary.tsv"))):
    run = os.path.basename(os.path.dirname(tsv))
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
    """The HAProxy row ballast is compared with."""
    if r["mode"] == "hetero":
        want = "haproxy-nt1@leastconn"
    else:
        want = "haproxy-nt2" if base_of(r["run"]).endswith("t2") else "haproxy-nt1"
    for c in rows:
        if c["run"] == r["run"] and c["row"] == want and c["proto"] == r["proto"]:
            return c
    return None


hdr = ["run", "row", "proto", "rps", "p50_ms", "p99_ms", "err", "rss_mib", "rps/haproxy", "p99/haproxy", "bg/fg/st%"]
table = [hdr]
# (mode directory, row, proto) -> [(rps ratio, p99 ratio)] over the repeated runs.
repeats = {}
for r in rows:
    ratio_rps = ratio_p99 = "-"
    if r["row"].startswith("ballast"):
        ref = ref_for(r)
        if ref and num(ref["rps"]) and num(r["rps"]):
            ratio_rps = f"{num(r['rps']) / num(ref['rps']):.2f}"
        if ref and num(ref["p99_ms"]) and num(r["p99_ms"]):
            ratio_p99 = f"{num(r['p99_ms']) / num(ref['p99_ms']):.2f}"
        if ratio_rps != "-" and ratio_p99 != "-":
            key = (base_of(r["run"]), r["row"], r["proto"])
            repeats.setdefault(key, []).append((float(ratio_rps), float(ratio_p99)))
    table.append([r["run"], r["row"], r["proto"], r["rps"], r["p50_ms"], r["p99_ms"], r["errors"],
                  r["rss_mib"], ratio_rps, ratio_p99, r["bg/fg/st%"]])


def print_table(table):
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))


print_table(table)
if any(len(v) > 1 for v in repeats.values()):
    print()
    print("ballast ÷ HAProxy per run (rps ratio / p99 ratio), and the median over the runs:")
    med = [["mode", "row", "proto", "runs", "median rps/haproxy", "median p99/haproxy", "each run (rps/p99)"]]
    for (base, row, proto), vals in sorted(repeats.items()):
        med.append([base, row, proto, len(vals), f"{statistics.median(v[0] for v in vals):.2f}",
                    f"{statistics.median(v[1] for v in vals):.2f}", " ".join(f"{a:.2f}/{b:.2f}" for a, b in vals)])
    print_table(med)
