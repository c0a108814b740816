#!/usr/bin/env python3
"""Generate the sample load traces in traces/ for `ballast sim`.

Deterministic (fixed seeds, python3 standard library only): running it again
rewrites byte-identical files.

    python3 scripts/gen_traces.py [--out traces]

Writes:
  diurnal-14d.csv     14 days, one row per 60 s: daily cycle, quieter weekends,
                      a lunch dip, a slow upward trend and noise (~150-2000 req/s)
  spiky.csv           1 day, one row per 10 s: steady ~300 req/s with sudden
                      spikes of 3-8x that decay over minutes
  ramp.csv            6 hours, one row per 10 s: flat, a steady 4-hour ramp
                      from 50 to 2500 req/s, flat again
  sample-access.log   2 minutes of Combined Log Format lines (a few per second,
                      one 10 s burst), to show access-log input

CSV rows are `t_seconds,requests_per_second` after a header line.
"""

import argparse
import math
import os
import random
from datetime import datetime, timedelta, timezone

DAY = 86_400


def diurnal(rng):
    rows = []
    for t in range(0, 14 * DAY, 60):
        day, sec = divmod(t, DAY)
        hour = sec / 3600.0
        # Peak mid-afternoon (15:00), trough around 03:00.
        cycle = 0.5 + 0.5 * math.sin(2 * math.pi * (hour - 9.0) / 24.0)
        lunch = 1.0 - 0.12 * math.exp(-((hour - 12.5) ** 2) / 0.5)
        weekend = 0.65 if day % 7 in (5, 6) else 1.0
        trend = 1.0 + 0.01 * day
        noise = rng.gauss(1.0, 0.04)
        rps = (150.0 + 1700.0 * cycle * lunch * weekend) * trend * noise
        rows.append((t, max(rps, 0.0)))
    return rows


def spiky(rng):
    n = DAY // 10
    base = [300.0 * rng.gauss(1.0, 0.05) for _ in range(n)]
    extra = [0.0] * n
    t = 0
    while True:
        t += int(rng.expovariate(1.0 / 7200.0))  # about 12 spikes a day
        if t >= DAY:
            break
        height = 300.0 * rng.uniform(2.0, 7.0)
        decay = rng.uniform(60.0, 600.0)  # seconds
        start = t // 10
        for i in range(start, min(n, start + int(decay * 5 / 10) + 1)):
            extra[i] += height * math.exp(-(i - start) * 10.0 / decay)
    return [(i * 10, max(b + e, 0.0)) for i, (b, e) in enumerate(zip(base, extra))]


def ramp(rng):
    rows = []
    for t in range(0, 6 * 3600, 10):
        if t < 3600:
            level = 50.0
        elif t < 5 * 3600:
            level = 50.0 + 2450.0 * (t - 3600) / (4 * 3600)
        else:
            level = 2500.0
        rows.append((t, max(level * rng.gauss(1.0, 0.03), 0.0)))
    return rows


def poisson(rng, lam):
    # Knuth's method; fine for the small rates used here.
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def access_log(rng):
    tz = timezone(timedelta(hours=-7))
    start = datetime(2026, 3, 2, 9, 0, 0, tzinfo=tz)
    paths = ["/", "/api/items", "/api/items/42", "/static/app.js", "/login", "/api/search?q=ballast"]
    agents = ["Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0", "Go-http-client/1.1"]
    lines = []
    for s in range(120):
        rate = 1.0 + 2.0 * s / 120.0 + (8.0 if 60 <= s < 70 else 0.0)
        when = start + timedelta(seconds=s)
        for _ in range(poisson(rng, rate)):
            ip = "10.0.%d.%d" % (rng.randrange(4), rng.randrange(1, 255))
            status = rng.choice([200] * 17 + [304, 404, 500])
            size = "-" if status == 304 else str(rng.randrange(200, 20000))
            stamp = when.strftime("%d/%b/%Y:%H:%M:%S %z")
            path = rng.choice(paths)
            agent = rng.choice(agents)
            lines.append('%s - - [%s] "GET %s HTTP/1.1" %d %s "-" "%s"' % (ip, stamp, path, status, size, agent))
    return lines


def write_csv(path, rows):
    with open(path, "w", newline="\n") as f:
        f.write("t_seconds,requests_per_second\n")
        for t, rps in rows:
            f.write("%d,%.1f\n" % (t, rps))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "traces"))
    out = parser.parse_args().out
    os.makedirs(out, exist_ok=True)
    write_csv(os.path.join(out, "diurnal-14d.csv"), diurnal(random.Random(14)))
    write_csv(os.path.join(out, "spiky.csv"), spiky(random.Random(7)))
    write_csv(os.path.join(out, "ramp.csv"), ramp(random.Random(3)))
    with open(os.path.join(out, "sample-access.log"), "w", newline="\n") as f:
        f.write("\n".join(access_log(random.Random(1))) + "\n")


if __name__ == "__main__":
    main()
