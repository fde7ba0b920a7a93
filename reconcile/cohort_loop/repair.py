"""``repair``: fix the drifted users of an audit through a normal target-braze run.

The run (:class:`~target_braze.sync.BrazeSync`) takes the ledger's lease as any sync does. For
each drifted user it first makes the ledger say what Braze was seen to hold
(:func:`~target_braze.ledger.audit.record_observed`), then stages one ``cohort_member_changes``
record with what Mixpanel says (``add`` for a member, ``remove`` otherwise). The run's own diff
turns those into ``/users/track`` adds and removes, records what Braze confirmed and publishes the
ledger, so the ledger stays the memory of what was sent. Users who agree are not touched; members
without a Braze id cannot be repaired (they are reported).

The audit read the ledger without its lease. If a target-braze run published the ledger between
the audit and the repair, what the audit saw may be stale (a user may have joined since), so the
repair sends nothing and asks for a new audit.
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
from braze_mixpanel_common.errors import DestinationError
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
    *,
    audited_ledger: str | None,
) -> dict[str, int]:
    """Send the fixes for every drifted user of ``audits``.

    Returns:
        ``users`` repaired, of which ``to_member`` (Mixpanel counts them in the cohort) and
        ``to_non_member``, and ``ledger_rows_corrected``.

    Args:
        audits: the audits of the cohorts to repair; only their drifted users are touched.
        settings: target-braze's settings (the run takes the ledger's lease as any run does).
        logger: where the run logs.
        clock: the clock of the run (tests pass a fake one).
        audited_ledger: the publish id of the ledger the audit read.

    Raises:
        DestinationError: as a target-braze run would (a lost lease, Braze refusing...), and
            when the ledger was published again since the audit (nothing is sent then).
    """
    sync = BrazeSync(settings, logger, clock=clock)
    fixed = {"users": 0, "to_member": 0, "to_non_member": 0, "ledger_rows_corrected": 0}
    try:
        run = sync.change_run(CHANGES_STREAM)
        if sync.ledger.publish_id() != audited_ledger:
            raise DestinationError(
                "The ledger was published again since the audit (a target-braze run in between): "
                "nothing repaired. Run the audit again, outside a cohort sync."
            )
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
