"""Sustained rate limiting: target-mixpanel against Mixpanel's rolling-minute ingestion limit.

The emulator enforces the limit on a fake clock shared with the target, so minutes of backing off
take no real time. (Braze's 3000 requests / 3 s and Mixpanel's 60 queries / hour are held the
same way by tests/target_braze/test_http.py and tests/tap_mixpanel_cohorts/test_budget.py.)
"""

from __future__ import annotations

import io
import json
import logging

from braze_mixpanel_common.retry import BackoffPolicy
from sandbox.emulators.mixpanel_import import MixpanelImportEmulator
from target_mixpanel.target import TargetMixpanel
from tests.support.clock import FakeClock
from tests.support.mixpanel import currents_record, record_msg, sa_config, schema_msg

EVENTS = 9_000
PER_MINUTE = 3_000
BATCH = 1_000


def test_sustained_rate_limit_is_waited_out_with_few_refusals(tmp_path, caplog):
    clock = FakeClock()
    stream = "users_messages_email_send"
    lines = [schema_msg(stream)]
    lines += [record_msg(stream, currents_record(i)) for i in range(EVENTS)]
    lines.append({"type": "STATE", "value": {"done": True}})
    states: list[dict] = []
    caplog.set_level(logging.INFO)
    with MixpanelImportEmulator(
        events_per_minute=PER_MINUTE, rate_clock=clock.monotonic, keep="keys"
    ) as emulator:
        target = TargetMixpanel(
            config=sa_config(
                emulator.url,
                batch_size=BATCH,
                max_concurrency=1,
                dead_letter_path=str(tmp_path / "dead.jsonl"),
            ),
            clock=clock,
            backoff=BackoffPolicy(),
            checkpoint_interval=0,
        )
        target.dispatcher.emit_state = states.append
        target.listen(io.StringIO("".join(json.dumps(m) + "\n" for m in lines)))
        stored = emulator.event_keys()
        refused = emulator.stats["rate_limited"]
    print(f"refused {refused} times, waited {sum(clock.sleeps):.0f} s of fake time")

    assert len(stored) == EVENTS  # nothing lost
    assert states[-1] == {"done": True}
    # 9 batches at 3 per minute: the limit is hit twice; each time the 2 s-doubling backoff
    # (no Retry-After from Mixpanel) waits out the minute within 5 refusals.
    assert 2 <= refused <= 10
    assert sum(clock.sleeps) >= 2 * 60 - 10
    summary = next(r.message for r in caplog.records if "waited_s=" in r.message)
    waited = float(summary.split("waited_s=")[1].split()[0])
    assert abs(waited - sum(clock.sleeps)) < 0.1
    assert f"retries={refused}" in summary
