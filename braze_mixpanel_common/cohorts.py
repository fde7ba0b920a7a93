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

CHANGES_STREAM = "cohort_member_changes"
"""Stream of membership changes (Mixpanel's ``add_members`` / ``remove_members`` deliveries), one
record per delivered member in delivery order per cohort; target-braze applies them to the ledger
of :data:`MEMBERS_STREAM`."""

CHANGE = "change"
CHANGE_ADD = "add"
CHANGE_REMOVE = "remove"
SESSION_ID = "session_id"
RECEIVED_AT = "received_at"

MEMBERS_SESSION_ID = "members_session_id"
"""Field of a ``cohorts`` record (webhook source): the ``members`` session whose snapshot of that
one cohort this run's ``cohort_members`` carries (null when the run carries none). A
``cohort_members`` schema with :data:`SESSION_ID` announces one-cohort snapshots: a snapshot
replaces the cohorts it covers (those with records, and those listed with this field) only."""
