#!/usr/bin/env python3
"""Summary of a benches/soak.sh run: RSS over time, deliveries, losses, churn; exit 1 on failure.

Reads OUT/rss.csv (elapsed_s,phase,rss_kib,connections), OUT/marks (key=value) and the load
tool's JSON reports: warm-*.json (warm-up cycle), ll-*.json (long-lived fleets),
churn-<kind>-<n>.json (one per churn cycle).
"""

import glob
import json
import os
import sys

LIMIT = 1.10  # final RSS must be within 10 % of the baseline


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def mib(kib):
    return kib / 1024.0


def main(out):
    marks = {}
    with open(os.path.join(out, "marks")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            if k:
                marks[k] = int(v)
    rows = []
    splits = []  # (elapsed, phase, [anon, file, anon in huge pages]) when rss.csv has them
    with open(os.path.join(out, "rss.csv")) as f:
        next(f)
        for line in f:
            parts = line.strip().split(",")
            if len(parts) >= 4 and parts[2].isdigit():
                rows.append((int(parts[0]), parts[1], int(parts[2]), int(parts[3] or 0)))
                split = [int(x) if x.isdigit() else 0 for x in parts[4:7]]
                splits.append((int(parts[0]), parts[1], split + [0] * (3 - len(split))))

    ok = True
    print(f"== soak summary ({out})")
    base, final = marks["baseline_kib"], marks["settled_kib"]

    # RSS over time, per minute of the soak phase.
    soak = [r for r in rows if r[1] == "soak"]
    print("-- holdfast RSS over time (sampled every ~10 s)")
    print(f"  cold start          {mib(marks['cold_kib']):7.1f} MiB")
    warm = [r for r in rows if r[1] == "warmup"]
    if warm:
        print(f"  warm-up cycle peak  {mib(max(r[2] for r in warm)):7.1f} MiB "
              f"({max(r[3] for r in warm)} connections)")
    print(f"  baseline            {mib(base):7.1f} MiB (after the warm-up cycle, all clients gone)")
    if soak:
        t0 = soak[0][0]
        print("  soak minute   RSS min / mean / max (MiB)    connections min / max")
        minute = {}
        for t, _, rss, c in soak:
            minute.setdefault((t - t0) // 60, []).append((rss, c))
        for m in sorted(minute):
            v = minute[m]
            rs = [x[0] for x in v]
            cs = [x[1] for x in v]
            print(f"  {m:4d}          {mib(min(rs)):6.1f} / {mib(sum(rs) / len(rs)):6.1f} / "
                  f"{mib(max(rs)):6.1f}            {min(cs):6d} / {max(cs):6d}")
        # Trend over the soak once everything is connected (skip the first minute).
        pts = [(t, rss) for t, _, rss, _ in soak if t - t0 >= 60] or [(t, r) for t, _, r, _ in soak]
        if len(pts) >= 3:
            n = len(pts)
            mt = sum(p[0] for p in pts) / n
            mr = sum(p[1] for p in pts) / n
            var = sum((p[0] - mt) ** 2 for p in pts)
            slope = sum((p[0] - mt) * (p[1] - mr) for p in pts) / var if var else 0.0
            print(f"  trend during soak   {mib(slope) * 3600:+.1f} MiB/hour (least squares, after minute 1)")
        print(f"  soak peak           {mib(max(r[2] for r in soak)):7.1f} MiB")
    print(f"  after leaving       {mib(marks['final_kib']):7.1f} MiB "
          f"({marks.get('quiesce_s', 15)} s after the last client left, as the baseline)")
    if marks.get("settle_extra_s", 0):
        print(f"  settled             {mib(final):7.1f} MiB after {marks['settle_extra_s']} s more")
    leave = [sp for sp in splits if sp[1] == "leave"]
    before = [sp for sp in splits if sp[1] == "quiesce"]
    if leave and before and any(sum(sp[2]) for sp in leave):
        print("  RSS split (KiB)     anon / file / anon in 2 MiB huge pages")
        for label, sp in (("baseline", before[-1]), ("left, first sample", leave[0]),
                          ("left, last sample", leave[-1])):
            a, f_, h = sp[2]
            print(f"    {label:18s} {a:8d} / {f_:6d} / {h:8d}")
    ratio = final / base if base else float("inf")
    rss_ok = ratio <= LIMIT
    ok &= rss_ok
    print(f"  final / baseline    {ratio:.3f}  (limit {LIMIT:.2f}) -> {'OK' if rss_ok else 'FAIL: RSS did not return to baseline'}")
    cold = marks.get("cold_kib", 0)
    if cold:
        print(f"  final / cold start  {final / cold:.3f}  (not the criterion: the first cycle sizes "
              "pools and allocator segments that are kept)")
    print(f"  holdfast at end     {marks.get('conns_at_end', '?')} connections, "
          f"{marks.get('subscriptions_at_end', '?')} subscriptions, "
          f"{marks.get('channels_at_end', '?')} channels (its /metrics gauges)")
    for k in ("subscriptions_at_end", "channels_at_end", "conns_at_end"):
        if marks.get(k, 0):
            ok = False
            print(f"  FAIL: {k} = {marks[k]} after every client left")
    if "accepted_total" in marks:
        print(f"  holdfast counters   {marks['accepted_total']} connections accepted, "
              f"{marks.get('publishes_total', '?')} items published, "
              f"{marks.get('delivered_total', '?')} messages delivered, "
              f"{marks.get('slow_consumers_total', '?')} slow consumers closed")

    # Deliveries and integrity.
    def fold(reports):
        agg = dict(clients=0, ready=0, failed=0, deliveries=0, expected=0, lost=0, reordered=0,
                   duplicated=0, closed=0, reconnects=0, items=0, failed_posts=0, timed_out=0,
                   runs=0, missing=0, p99=0.0, maxl=0.0, errors={})
        for path, r in reports:
            agg["runs"] += 1
            if r is None:
                agg["missing"] += 1
                continue
            agg["clients"] += r["clients"]
            agg["ready"] += r["connect"]["ready"]
            agg["failed"] += r["connect"]["failed"]
            agg["deliveries"] += r["deliveries"]
            agg["expected"] += r["expected_deliveries"]
            for k in ("lost", "reordered", "duplicated", "closed", "reconnects"):
                agg[k] += r[k]
            p = r.get("publish") or {}
            agg["items"] += p.get("items", 0)
            agg["failed_posts"] += p.get("failed_posts", 0)
            agg["timed_out"] += int(r["timed_out"])
            agg["p99"] = max(agg["p99"], r["latency"]["p99_ms"])
            agg["maxl"] = max(agg["maxl"], r["latency"]["max_ms"])
            for e, n in r["errors"].items():
                agg["errors"][e] = agg["errors"].get(e, 0) + n
        return agg

    print("-- deliveries and integrity (every client checks its channel's sequence numbers)")
    print("  fleet         runs  connected failed  delivered / expected     lost  reord  dup  closed  p99 ms  max ms")
    groups = []
    for kind in ("sse", "stream", "ws", "poll"):
        for label, pat in (("warm", f"warm-{kind}.json"), ("long", f"ll-{kind}.json"),
                           ("churn", f"churn-{kind}-*.json")):
            files = sorted(glob.glob(os.path.join(out, pat)))
            if not files:
                continue
            groups.append((label, kind, fold([(f, load(f)) for f in files])))
    totals = dict(deliveries=0, expected=0, churned=0, connections=0, items=0, lost_strict=0,
                  lost_poll=0)
    for label, kind, a in groups:
        name = f"{label}-{kind}"
        print(f"  {name:12s} {a['runs']:5d} {a['ready']:10d} {a['failed']:6d}  {a['deliveries']:10d} / "
              f"{a['expected']:<10d} {a['lost']:6d} {a['reordered']:6d} {a['duplicated']:4d} {a['closed']:7d} "
              f"{a['p99']:7.1f} {a['maxl']:7.1f}"
              + (f"  ({a['missing']} without report)" if a["missing"] else "")
              + ("  TIMED OUT" if a["timed_out"] else ""))
        totals["deliveries"] += a["deliveries"]
        totals["expected"] += a["expected"]
        totals["items"] += a["items"]
        totals["connections"] += a["ready"]
        if label == "churn":
            totals["churned"] += a["ready"]
        bad = a["lost"] + a["reordered"] + a["duplicated"]
        if kind == "poll":
            totals["lost_poll"] += a["lost"]
            bad = a["reordered"] + a["duplicated"]
        else:
            totals["lost_strict"] += a["lost"]
        if label != "warm" and (bad or a["missing"] or a["failed"]):
            ok = False
            print(f"    FAIL: {name}: lost/reordered/duplicated {bad}, "
                  f"{a['failed']} failed connects, {a['missing']} runs without report")
        for e, n in sorted(a["errors"].items()):
            print(f"    {n} x {e}")
    print(f"  total: {totals['connections']} client connections made ({totals['churned']} of them in "
          f"churn cycles), {totals['items']} items published, {totals['deliveries']} of "
          f"{totals['expected']} expected deliveries; lost (sse/stream/ws) {totals['lost_strict']}, "
          f"lost (long-poll, by nature) {totals['lost_poll']}")
    print(f"== soak {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
