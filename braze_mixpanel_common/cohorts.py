"""The cohort contract between tap-mixpanel-cohorts and target-braze: stream and field names.

The tap writes these names; the target's settings default to them, so the two plugins fit
without configuration and any other tap can feed target-braze by using the same names.
"""

from __future__ import annotations

COHORTS_STREAM = "cohorts"
"""Stream listing the cohorts that exist upstream (fields ``id``, ``name``, ``created``, ...)."""

MEMBERS_STREAM = "cohort_members"
"""Stream of cohort membership snapshots, one record per member, ended by ACTIVATE_VERSION."""

COHORT_ID = "cohort_id"
COHORT_NAME = "cohort_name"
DISTINCT_ID = "distinct_id"
EXTERNAL_ID = "external_id"

MEMBER_FIELDS = (COHORT_ID, COHORT_NAME, DISTINCT_ID, EXTERNAL_ID)
"""Fields of every ``cohort_members`` record (extra profile properties may follow)."""
