"""The receiver on an S3 spool (moto): conditional writes, retries, 503 without a bucket, order."""

from __future__ import annotations

import uuid

import pytest

from braze_mixpanel_common.cohort_spool import open_spool
from sandbox.emulators.mixpanel_cohort_sync import CohortSyncPusher
from sandbox.emulators.mixpanel_query import Cohort, GeneratedMembers, MixpanelQueryEmulator
from tap_mixpanel_cohorts.spool_plan import plan_cohort
from tests.cohort_webhook.conftest import PASSWORD, USER
from tests.cohort_webhook.pages import page_body, post, spooled_ids
from tests.support.storage import new_s3_bucket

AUTH = (USER, PASSWORD)


def test_s3_spool_end_to_end_with_retries_and_replicas(receivers, s3_endpoint):
    bucket, options = new_s3_bucket(s3_endpoint, "cohort-spool")
    url = f"s3://{bucket}/mixpanel"
    first = receivers(url, spool_options=options)
    second = receivers(url, spool_options=options)
    members = GeneratedMembers(95, prefix="s3-")
    query = MixpanelQueryEmulator([Cohort(601, "On S3", members=members)])
    for receiver in (first, second):  # two replicas behind one URL would each see retries
        pusher = CohortSyncPusher(query, receiver.url, auth=AUTH, page_size=10, concurrency=4)
        pusher.sync()
    found = spooled_ids(url, "601", options)
    assert len(found) == 2
    assert all(ids == [f"s3-{n}" for n in range(95)] for ids in found.values())
    # The very same page again, to the other replica: acknowledged, not rewritten.
    body = page_body("602", "dup", 1, 1)
    assert post(first.url, body, AUTH).status_code == 200
    assert post(second.url, page_body("602", "dup", 1, 1, members=[]), AUTH).status_code == 200
    assert spooled_ids(url, "602", options) == {"dup": [f"dup-p1-{i}" for i in range(3)]}
    assert "Already had page 1/1 of members session dup of cohort 602" in second.log()


def test_s3_spool_without_its_bucket_answers_503(receivers, s3_endpoint):
    options = {"endpoint_url": s3_endpoint, "key": "testing", "secret": "testing"}
    receiver = receivers(f"s3://missing-{uuid.uuid4().hex[:10]}/spool", spool_options=options)
    answer = post(receiver.url, page_body("603"), AUTH)
    assert answer.status_code == 503
    assert answer.json()["status"] == "failure"
    assert "testing" not in receiver.log().replace("s3://", "")  # no key or secret logged


@pytest.mark.parametrize("store", ["local", "s3"])
def test_cycles_in_the_same_second_are_all_consumed_in_order(
    receivers, s3_endpoint, tmp_path, store
):
    """Consumed one at a time, each new cycle's session id sorting below the last one's."""
    if store == "s3":
        bucket, options = new_s3_bucket(s3_endpoint, "same-second")
        url = f"s3://{bucket}/spool"
    else:
        url, options = str(tmp_path / "spool"), {}
    receiver = receivers(url, spool_options=options)
    watermark = None
    for session in ("z9", "m5", "a1"):
        for action in ("add_members", "remove_members"):
            body = page_body("610", session, action=action, members=[])
            assert post(receiver.url, body, AUTH).status_code == 200
        sessions = open_spool(url, {**options, "skip_instance_cache": True}).scan("610")["610"]
        work = plan_cohort("610", sessions, watermark, members_selected=True, changes_selected=True)
        assert [(d.session_id, d.action) for d in work.changes] == [
            (session, "add_members"),
            (session, "remove_members"),
        ]
        watermark = work.changes_mark
