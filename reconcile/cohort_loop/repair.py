"""``repair``: fix the drifted users of an audit through a normal target-braze run.

The run (:class:`~target_braze.sync.BrazeSync`) takes the ledger's lease as any sync does. For
each drifted user it first makes the ledger say what Braze was seen to hold
(:func:`~target_braze.ledger.audit.record_observed`), then stages one ``cohort_member_changes``
record with what Mixpanel says (``add`` for a member, ``remove`` otherwise). The run's own diff
turns those into ``/users/track`` adds and removes, records what Braze confirmed and publishes the
ledger, so the ledger stays the memory of what was sent. Users who agree are not touched; members
without a Braze id cannot be repaired (they are reported).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from braze_mixpanel_common.clock import Clock
from braze_mixpanel_common.cohorts import (
    CHANGE,
    CHANGE_ADD,
    CHANGE_REMOVE,
    CHANGES_STREAM,
    SESSION_ID,
)
from reconcile.cohort_loop.audit import CohortAudit
from target_braze.ledger.audit import record_observed
from target_braze.settings import Settings as TargetSettings
from target_braze.sync import BrazeSync

REPAIR_SESSION = "reconcile-cohorts-repair"


def repair(
    audits: Iterable[CohortAudit],
    settings: TargetSettings,
    logger: logging.Logger,
    clock: Clock | None = None,
) -> dict[str, int]:
    """Send the fixes for every drifted user of ``audits``.

    Returns:
        ``users`` repaired, of which ``to_member`` (Mixpanel counts them in the cohort) and
        ``to_non_member``, and ``ledger_rows_corrected``.

    Raises:
        DestinationError: as a target-braze run would (a lost lease, Braze refusing...).
    """
    sync = BrazeSync(settings, logger, clock=clock)
    fixed = {"users": 0, "to_member": 0, "to_non_member": 0, "ledger_rows_corrected": 0}
    try:
        run = sync.change_run(CHANGES_STREAM)
        for audit in audits:
            drifted = audit.drifted()
            if not drifted:
                continue
            observed = {u: audit.name if u in audit.in_braze else None for u in drifted}
            fixed["ledger_rows_corrected"] += record_observed(
                sync.ledger, run.ns, audit.cohort_id, observed
            )
            for user in drifted:
                member = user in audit.in_mixpanel
                fixed["users"] += 1
                fixed["to_member" if member else "to_non_member"] += 1
                sync.add_change(
                    CHANGES_STREAM,
                    {
                        settings.cohort_id_field: audit.cohort_id,
                        settings.cohort_name_field: audit.name,
                        settings.user_id_field: user,
                        CHANGE: CHANGE_ADD if member else CHANGE_REMOVE,
                        SESSION_ID: REPAIR_SESSION,
                    },
                )
        sync.finish(None)
    finally:
        sync.close()
    return fixed
