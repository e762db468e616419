"""What bench_gateway prints: each case's figures and each round's, every failed request,
and a verdict that only a run whose every request got a 2xx answer can pass."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.bench_gateway import Case

TARGETS = {"rps_ratio": 20.0, "added_p50_ms": 1.0, "rss_mb": 150.0}
# wrk reports latencies in microseconds, but a difference of two medians means nothing
# below what the baseline itself moves from round to round: a ratio is printed only
# when both added latencies stand above that spread (and above 10 us).
FLOOR_MS = 0.01


def _ratio(numerator: float, denominator: float, floor: float) -> str:
    if numerator <= floor or denominator <= floor:
        return f"{'-':>7}"
    return f"{numerator / denominator:7.1f}"


def report(cases: list[Case], orders: list[str]) -> None:
    direct, ours, theirs = cases
    failures = {case.name: case.failures() for case in cases}
    failed = sum(sum(counts.values()) for counts in failures.values())

    print(f"chat completions, 16 tokens; {len(orders)} rounds, medians shown; run order:")
    for index, order in enumerate(orders, 1):
        print(f"  round {index}: {order}")
    others_s = {case.name: sum(o.measured_s for o in cases if o is not case) for case in cases}
    print(
        "cores: the mock engine and wrk on core 0; both proxies on core 1, the one measured "
        "and the other idling; processes that are not ours may run on either core"
    )
    for proxy in (ours, theirs):
        share = proxy.idle_cpu_s / others_s[proxy.name] if others_s[proxy.name] else 0.0
        print(
            f"  {proxy.name} idling used {proxy.idle_cpu_s:.2f} s of CPU while the others "
            f"were measured ({others_s[proxy.name]:.0f} s), {share:.1%} of core 1"
        )
    print(
        "logging: both proxies at WARNING with no access log; bytes logged while measured: "
        f"ours {ours.log_bytes}, {theirs.name} {theirs.log_bytes}"
    )
    print("counted: 2xx answers only; any other answer, socket error or broken stream fails")
    print()
    print(
        f"{'':22} {'2xx/s @32':>10} {'seq p50 ms':>11} {'seq p99 ms':>11} "
        f"{'TTFB ms':>8} {'RSS MB':>7} {'failed':>7}"
    )
    for case in cases:
        rss = f"{max(case.rss_mb):7.0f}" if case.rss_mb else f"{'-':>7}"
        print(
            f"{case.name:22} {case.requests_per_s:10.0f} {case.p50_ms:11.3f} {case.p99_ms:11.3f} "
            f"{case.ttfb_median_ms:8.2f} {rss} {sum(failures[case.name].values()):7d}"
        )
    print()
    for case in cases:
        rounds = " ".join(f"{r.requests_per_s:7.0f}" for r in case.loads)
        p50s = " ".join(f"{r.latency_p50_ms:6.3f}" for r in case.sequentials)
        print(f"{case.name:22} 2xx/s by round: {rounds}   p50 ms by round: {p50s}")
    paired = [
        f"{o.requests_per_s / t.requests_per_s:7.1f}" if t.requests_per_s else f"{'-':>7}"
        for o, t in zip(ours.loads, theirs.loads, strict=True)
    ]
    print(f"{'2xx/s, ours / LiteLLM':22} by round: {' '.join(paired)}")
    for name, counts in failures.items():
        if counts:
            listed = ", ".join(f"{kind} x{n}" for kind, n in sorted(counts.items()))
            print(f"FAILED requests, {name}: {listed}")

    direct_p50s = [r.latency_p50_ms for r in direct.sequentials]
    noise_ms = max(FLOOR_MS, max(direct_p50s) - min(direct_p50s))
    ours_added = (ours.p50_ms - direct.p50_ms, ours.p99_ms - direct.p99_ms)
    theirs_added = (theirs.p50_ms - direct.p50_ms, theirs.p99_ms - direct.p99_ms)
    ours_ttfb = ours.ttfb_median_ms - direct.ttfb_median_ms
    theirs_ttfb = theirs.ttfb_median_ms - direct.ttfb_median_ms
    rps_ratio = ours.requests_per_s / theirs.requests_per_s if theirs.requests_per_s else 0.0
    met = {
        "requests/s": rps_ratio >= TARGETS["rps_ratio"],
        "added p50": ours_added[0] <= TARGETS["added_p50_ms"],
        "memory": bool(ours.rss_mb) and max(ours.rss_mb) <= TARGETS["rss_mb"],
    }

    def verdict(ok: bool) -> str:
        return "FAILS" if failed else "meets" if ok else "MISSES"

    print()
    print(f"{'':36} {'ours':>9} {'LiteLLM':>9} {'ratio':>7} {'target':>8}")
    rps_shown = f"{rps_ratio:7.1f}" if theirs.requests_per_s else f"{'-':>7}"
    print(
        f"{'2xx answers/s at 32 connections':36} {ours.requests_per_s:9.0f} "
        f"{theirs.requests_per_s:9.0f} {rps_shown} {'>= 20x':>8}  {verdict(met['requests/s'])}"
    )
    print(
        f"{'added p50 latency, sequential (ms)':36} {ours_added[0]:9.3f} {theirs_added[0]:9.3f} "
        f"{_ratio(theirs_added[0], ours_added[0], noise_ms)} {'<= 1':>8}  "
        f"{verdict(met['added p50'])}"
    )
    print(
        f"{'added p99 latency, sequential (ms)':36} {ours_added[1]:9.3f} {theirs_added[1]:9.3f} "
        f"{_ratio(theirs_added[1], ours_added[1], noise_ms)}"
    )
    print(
        f"{'added time to first byte (ms)':36} {ours_ttfb:9.3f} {theirs_ttfb:9.3f} "
        f"{_ratio(theirs_ttfb, ours_ttfb, noise_ms)}"
    )
    if ours.rss_mb and theirs.rss_mb:
        print(
            f"{'resident memory, peak of rounds (MB)':36} {max(ours.rss_mb):9.0f} "
            f"{max(theirs.rss_mb):9.0f} {max(theirs.rss_mb) / max(ours.rss_mb):7.1f} "
            f"{'<= 150':>8}  {verdict(met['memory'])}"
        )
    print(
        f"(ratios are LiteLLM's over ours; a latency ratio is left out, '-', where either "
        f"added figure is within {noise_ms:.3f} ms, the direct engine's own p50 spread)"
    )
    if failed:
        print(f"verdict: FAILS, {failed} requests did not get a 2xx answer (listed above)")
    elif all(met.values()):
        print("verdict: meets every target; every request got a 2xx answer")
    else:
        missed = ", ".join(name for name, ok in met.items() if not ok)
        print(f"verdict: MISSES {missed}; every request got a 2xx answer")
