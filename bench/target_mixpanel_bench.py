"""Benchmark: push generated Braze Currents events through target-mixpanel into the emulator.

    .venv/bin/python -m bench.target_mixpanel_bench --events 1000000

The emulator runs in its own process (keeping only dedupe keys), the input is written to a file
first, then ``target-mixpanel --input`` is timed. Prints events/s (wall clock), the target's CPU
seconds and its peak RSS. ``--profile`` runs the target under cProfile instead.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import msgspec

from bench.common import REPO

STREAMS = {
    "users_behaviors_customevent": "custom",
    "users_messages_email_send": "email",
    "users_behaviors_app_sessionstart": "session",
}


def write_input(path: Path, events: int, seed: int = 1) -> None:
    """Singer messages: 3 Currents streams interleaved, a STATE every 10 000 records."""
    rng = random.Random(seed)
    enc = msgspec.json.Encoder()
    base = 1_760_000_000
    with path.open("wb") as out:
        for stream in STREAMS:
            schema = {"type": "object", "properties": {"id": {"type": "string"}}}
            out.write(enc.encode({"type": "SCHEMA", "stream": stream, "schema": schema}) + b"\n")
        names = list(STREAMS)
        for i in range(events):
            stream = names[i % 3]
            record = {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "user_id": f"{i % 20000:024x}",
                "external_user_id": f"user-{i % 20000:05d}",
                "app_id": "a1b2c3d4-0000-4000-8000-000000000001",
                "time": base + i // 50,
                "platform": "ios",
                "os_version": "iOS 18.1",
                "device_model": "iPhone16,2",
                "device_id": f"dev-{i % 30000}",
                "_sdc_source_file": "s3://bucket/currents/file.avro",
            }
            if stream == "users_behaviors_customevent":
                record["name"] = "added_to_cart"
                record["properties"] = json.dumps(
                    {"sku": f"sku-{i % 999}", "price": 12.5, "tags": ["a", "b"]}
                )
            elif stream == "users_messages_email_send":
                record.update(
                    campaign_id="c-1", campaign_name="Winter sale", email_address="x@example.com"
                )
            else:
                record["session_id"] = f"s-{i}"
            out.write(enc.encode({"type": "RECORD", "stream": stream, "record": record}) + b"\n")
            if (i + 1) % 10_000 == 0:
                out.write(enc.encode({"type": "STATE", "value": {"n": i + 1}}) + b"\n")


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--max-concurrency", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="run the target under cProfile")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tm-bench-"))
    data = work / "input.jsonl"
    t0 = time.perf_counter()
    write_input(data, args.events)
    print(
        f"input: {args.events} events, {data.stat().st_size / 1e6:.0f} MB, "
        f"written in {time.perf_counter() - t0:.1f} s"
    )

    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox.emulators.mixpanel_import",
            "--port",
            "0",
            "--keep",
            "keys",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert emulator.stdout is not None
    try:
        url = emulator.stdout.readline().strip()
        config = work / "config.json"
        config.write_text(
            json.dumps(
                {
                    "api_url": url,
                    "project_id": "12345",
                    "service_account_username": "sa-user.mp-service-account",
                    "service_account_secret": "sa-secret",
                    "max_concurrency": args.max_concurrency,
                    "dead_letter_path": str(work / "dead.jsonl"),
                }
            )
        )
        command = [sys.executable, "-m", "target_mixpanel", "--config", str(config)]
        if args.profile:
            command[1:3] = [
                "-m",
                "cProfile",
                "-o",
                str(work / "target.prof"),
                "-m",
                "target_mixpanel",
            ]
        start = time.perf_counter()
        with (
            data.open("rb") as stdin,
            (work / "state.jsonl").open("wb") as stdout,
            (work / "target.log").open("wb") as stderr,
        ):
            target = subprocess.Popen(command, cwd=REPO, stdin=stdin, stdout=stdout, stderr=stderr)
            _, status, usage = os.wait4(target.pid, 0)
        wall = time.perf_counter() - start
        if status != 0:
            sys.exit(f"target failed ({status}); see {work / 'target.log'}")
        with urllib.request.urlopen(f"{url}/_emulator/stats") as response:
            stats = json.load(response)
    finally:
        emulator.terminate()
        emulator.wait()
    last_state = (work / "state.jsonl").read_text().splitlines()[-1]
    cpu = usage.ru_utime + usage.ru_stime
    print(f"emulator stored {stats['imported']} unique events in {stats['requests']} requests")
    print(f"final state: {last_state}")
    print(f"wall time: {wall:.1f} s  -> {args.events / wall:,.0f} events/s")
    print(
        f"target CPU: {cpu:.1f} s (user {usage.ru_utime:.1f} + sys {usage.ru_stime:.1f})  "
        f"-> {args.events / cpu:,.0f} events per CPU-second"
    )
    print(f"target peak RSS: {usage.ru_maxrss / 1024:.0f} MB")
    if args.profile:
        print(f"profile: {work / 'target.prof'}")
    if stats["imported"] != args.events:
        sys.exit(f"expected {args.events} events in the emulator, found {stats['imported']}")


if __name__ == "__main__":
    main()
