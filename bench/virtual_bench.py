"""Virtual time vs real time for the property suite, in one run.

1. The same sample of fault plans (short settings: timeout 1 s, deadline 4 s)
   judged for `get_order` over a real loopback socket and on virtual time:
   examples per second each, and the ratio (target >= 50x).
2. The first few production-settings plans over a socket and on virtual time.
3. 400 examples per property at production settings (timeout 5 s, deadline
   30 s, Retry-After to 60 s, token TTL 3,600 s) on virtual time, for
   get_order, acknowledge and iter_orders: wall time (target <= 60 s).

    .venv/bin/python bench/virtual_bench.py [--sample 60] [--production 400]
        [--production-real 5] [--no-append]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from hypothesis import HealthCheck, Phase, given, settings
from results_file import heading, publish

from partnerkit.client import AsyncPartnerClient, RetryPolicy
from partnerkit.contracts.harness import client_settings, observe_async
from partnerkit.contracts.strategies import fault_plans, production_fault_plans
from partnerkit.contracts.verdicts import judge
from partnerkit.contracts.virtual import VirtualPartner
from partnerkit.simulator import FakePartner
from partnerkit.simulator.state import DEFAULT_CLIENT_SECRET as SECRET

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SHORT_RETRY = RetryPolicy(max_attempts=3, backoff_base=0.02, backoff_max=0.1, retry_after_max=2.0)
PRODUCTION_RETRY = RetryPolicy(max_attempts=4, backoff_base=0.5, backoff_max=8.0,
                               retry_after_max=60.0)
RUNS: dict[str, tuple[Any, str | None]] = {
    "get_order": (lambda client: client.get_order("ORD-000003"), None),
    "acknowledge": (lambda client: client.acknowledge("ORD-000004", idempotency_key="k"), "k"),
    "iter_orders": (lambda client: client.iter_orders(), None),
}


def _one_rule(fault: dict[str, Any], times: int = 1, **timing: Any) -> dict[str, Any]:
    return {"seed": 1, "dataset": {"orders": 12, "page_size": 5, "token_ttl_s": 3600},
            "rules": [{"match": {"path": "/v1/orders/*"}, "times": times, "fault": fault,
                       **timing}]}


#: Production-settings plans that wait the way production partners make clients wait.
WAITING_PLANS = [
    _one_rule({"status": 429, "retry_after": 20}),
    _one_rule({"status": 503, "retry_after": "http-date:10"}),
    _one_rule({"latency": {"fixed_ms": 7_000}}, times=2),
    _one_rule({"disconnect": "hang"}),
    _one_rule({"dribble": {"chunk_bytes": 32, "interval_ms": 500}}),
    _one_rule({"status": 503}, times=3),
]


def sample(strategy: Any, count: int) -> list[dict[str, Any]]:
    """`count` plans drawn the same way every run (derandomized)."""
    plans: list[dict[str, Any]] = []

    @given(strategy)
    @settings(max_examples=count, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    def draw(plan: dict[str, Any]) -> None:
        plans.append(plan)

    draw()
    return plans[:count]


def over_a_socket(plans: list[dict[str, Any]], timeout: float = 1.0, deadline: float = 4.0,
                  retry: RetryPolicy = SHORT_RETRY) -> tuple[float, int]:
    violated = 0
    observed = client_settings(timeout=timeout, deadline=deadline, retry=retry)
    with FakePartner({"rules": []}) as partner:

        async def main() -> Any:
            async with AsyncPartnerClient.from_url(
                    partner.url, client_id="orderops", client_secret=SECRET,
                    timeout=timeout, deadline=deadline, retry=retry) as client:
                return await observe_async(partner, "get_order",
                                           lambda: client.get_order("ORD-000003"), observed)

        started = time.perf_counter()
        for plan in plans:
            partner.set_scenario(plan)
            partner.reset()
            violated += not judge(anyio.run(main)).passed
        return time.perf_counter() - started, violated


def on_virtual_time(plans: list[dict[str, Any]], operation: str, **options: Any
                    ) -> tuple[float, int]:
    run, key = RUNS[operation]
    violated = 0
    with VirtualPartner({"rules": []}) as partner:
        started = time.perf_counter()
        for plan in plans:
            partner.set_scenario(plan)
            partner.reset()
            observation = partner.observe(operation, run, idempotency_key=key, **options)
            violated += not judge(observation).passed
        return time.perf_counter() - started, violated


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=60)
    parser.add_argument("--production", type=int, default=400)
    parser.add_argument("--production-real", type=int, default=len(WAITING_PLANS),
                        help="waiting plans also run over a socket in real time")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    asyncio.set_event_loop_policy(None)

    short = sample(fault_plans(paths=["/v1/orders/*"], max_latency_ms=150), args.sample)
    real_s, real_bad = over_a_socket(short)
    virtual_s, virtual_bad = on_virtual_time(short, "get_order", timeout=1.0, deadline=4.0,
                                             retry=SHORT_RETRY)
    production_sample = WAITING_PLANS[:args.production_real]
    production_real_s, production_real_bad = over_a_socket(
        production_sample, timeout=5.0, deadline=30.0, retry=PRODUCTION_RETRY)
    production_virtual_s, production_virtual_bad = on_virtual_time(
        production_sample, "get_order", timeout=5.0, deadline=30.0, retry=PRODUCTION_RETRY)
    production_rows = []
    for operation in RUNS:
        plans = sample(production_fault_plans(), args.production)
        seconds, bad = on_virtual_time(plans, operation, timeout=5.0, deadline=30.0,
                                       retry=PRODUCTION_RETRY)
        production_rows.append((operation, len(plans), seconds, bad))

    total = sum(row[2] for row in production_rows)
    lines = [
        heading("virtual time vs real time", f".venv/bin/python bench/virtual_bench.py "
                f"--sample {args.sample} --production {args.production}"),
        "",
        f"Same {len(short)} fault plans (`fault_plans(paths=['/v1/orders/*'], "
        f"max_latency_ms=150)`), `get_order`, timeout 1 s, deadline 4 s:",
        "",
        "| run | wall s | examples/s | × real | plans with violations |",
        "|---|---:|---:|---:|---:|",
        f"| real time, loopback socket | {real_s:.2f} | {len(short) / real_s:.1f} | 1 | "
        f"{real_bad} |",
        f"| virtual time, in process | {virtual_s:.2f} | {len(short) / virtual_s:.1f} | "
        f"{real_s / virtual_s:.0f} | {virtual_bad} |",
        "",
        f"{len(production_sample)} plans that wait as production partners do (429 with "
        f"Retry-After 20 s, 503 with an HTTP-date 10 s ahead, 7 s latency twice, a hang, "
        f"a body dribbled over ~5 s, three 503s), `get_order`, timeout 5 s, deadline 30 s:",
        "",
        "| run | wall s | examples/s | × real | plans with violations |",
        "|---|---:|---:|---:|---:|",
        f"| real time, loopback socket | {production_real_s:.2f} | "
        f"{len(production_sample) / production_real_s:.2f} | 1 | {production_real_bad} |",
        f"| virtual time, in process | {production_virtual_s:.3f} | "
        f"{len(production_sample) / production_virtual_s:.0f} | "
        f"{production_real_s / production_virtual_s:.0f} | {production_virtual_bad} |",
        "",
        "Production settings on virtual time (timeout 5 s, deadline 30 s, Retry-After to 60 s, "
        "latency to 12 s, token TTL 3,600 s, windows/flaps/ramps over 60 s):",
        "",
        "| property | examples | wall s | examples/s | with violations |",
        "|---|---:|---:|---:|---:|",
        *(f"| {operation} | {count} | {seconds:.1f} | {count / seconds:.0f} | {bad} |"
          for operation, count, seconds, bad in production_rows),
        f"| all three | {sum(r[1] for r in production_rows)} | {total:.1f} | | |",
        "",
    ]
    section = "\n".join(lines)
    publish(section, append=not args.no_append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
