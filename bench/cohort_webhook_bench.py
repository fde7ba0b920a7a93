"""Benchmarks of the cohort-sync webhook path.

``throughput``: the real receiver process (``python -m mixpanel_cohort_webhook``) taking pages of
1,000 members from 8 concurrent senders into a local spool; goal >= 50 pages/s. The bodies are
built before the clock starts, so the figure is the receiver's (auth, read, decode, validate,
fsync'ed atomic write, answer), not the senders'.

``e2e``: a 1,000,000-member cohort pushed by the sandbox's Mixpanel cohort sync as pages of
1,000 -> receiver -> spool -> tap-mixpanel-cohorts (source: webhook) -> target-braze -> the Braze
emulator, then a cycle with 1% churn; wall time per stage and peak RSS per process. Goals: the
full sync <= 5 minutes, each process <= 300 MB, the churn cycle <= 30 s.

Run::

    .venv/bin/python -m bench.cohort_webhook_bench throughput [--pages 800] [--senders 8]
    .venv/bin/python -m bench.cohort_webhook_bench e2e [--members 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench.common import OUT, Row, print_table
from bench.procfs import TreeSampler
from sandbox.loop.webhook_receiver import start_receiver

AUTH = ("bench-user", "bench-password-not-secret")
PAGE_MEMBERS = 1000


def page_template(members: int = PAGE_MEMBERS) -> str:
    """A members page as Mixpanel sends it, with ``{S}``/``{P}`` holes for session and page."""
    body = {
        "action": "members",
        "parameters": {
            "mixpanel_project_id": "12345",
            "mixpanel_cohort_id": "9001",
            "mixpanel_cohort_name": "Bench cohort",
            "mixpanel_cohort_description": "",
            "mixpanel_session_id": "@S@",
            "page_info": {"total_pages": "@T@", "page_count": "@P@"},
            "members": [
                {
                    "mixpanel_distinct_id": f"@S@-@P@-{i}",
                    "email": f"user{i}@example.com",
                    "first_name": "Bench",
                    "last_name": f"User {i}",
                    "$braze_external_id": f"ext-@S@-@P@-{i}",
                    "plan": "pro" if i % 3 == 0 else "free",
                }
                for i in range(members)
            ],
        },
    }
    return json.dumps(body, separators=(",", ":")).replace('"@T@"', "@T@").replace('"@P@"', "@P@")


def throughput(pages: int, senders: int, workdir: Path) -> list[Row]:
    """Pages per second into a local spool with ``senders`` concurrent senders."""
    template = page_template()
    per_sender = pages // senders
    bodies = [
        [
            template.replace("@S@", f"s{sender}")
            .replace("@T@", str(per_sender))
            .replace("@P@", str(page))
            .encode()
            for page in range(1, per_sender + 1)
        ]
        for sender in range(senders)
    ]
    spool = workdir / "spool"
    receiver = start_receiver(str(spool), workdir / "receiver.log", credentials=AUTH)
    sampler = TreeSampler(receiver.process.pid)
    sampler.start()
    failures: list[int] = []
    try:
        # Warm-up: one page each, not timed (connections, imports, first folder creations).
        for sender in range(senders):
            requests.post(receiver.url, data=bodies[sender][0], auth=AUTH, timeout=60)

        def send(own: list[bytes]) -> None:
            http = requests.Session()
            http.auth = AUTH
            headers = {"Content-Type": "application/json"}
            for body in own[1:]:
                answer = http.post(receiver.url, data=body, headers=headers, timeout=60)
                if answer.status_code != 200:
                    failures.append(answer.status_code)

        threads = [threading.Thread(target=send, args=(own,)) for own in bodies]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
    finally:
        receiver.stop()
        sampler.stop.set()
        sampler.join()
    if failures:
        raise RuntimeError(f"{len(failures)} pages refused: {sorted(set(failures))}")
    stored = sum(1 for p in spool.rglob("page-*.json"))
    timed = senders * (per_sender - 1)
    if stored != senders * per_sender:
        raise RuntimeError(f"{stored} pages stored, {senders * per_sender} sent")
    size_mb = len(bodies[0][0]) / 2**20
    rss = max(sampler.peaks.values(), default=0.0)
    return [
        Row(
            f"receiver, {senders} senders, pages of {PAGE_MEMBERS} members",
            timed / wall,
            "pages/s",
            "goal >= 50",
            f"({timed} pages of {size_mb:.2f} MB in {wall:.1f} s)",
        ),
        Row("receiver peak RSS", rss, "MB", "goal <= 300"),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmark and print its table (also written to bench/out)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="which", required=True)
    tp = sub.add_parser("throughput")
    tp.add_argument("--pages", type=int, default=800)
    tp.add_argument("--senders", type=int, default=8)
    e2e = sub.add_parser("e2e")
    e2e.add_argument("--members", type=int, default=1_000_000)
    e2e.add_argument("--churn", type=float, default=0.01)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="cohort-webhook-bench-"))
    try:
        if args.which == "throughput":
            rows = throughput(args.pages, args.senders, workdir)
        else:
            from bench.cohort_webhook_e2e import end_to_end

            rows = end_to_end(args.members, args.churn, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    text = print_table(rows, header=f"cohort webhook bench: {args.which} ({load}, 2 CPUs)")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"cohort-webhook-{args.which}.md").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
