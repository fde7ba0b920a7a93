"""The comparison: per cohort, each sampled user as Mixpanel, the ledger and Braze see them.

A user *agrees* when Mixpanel's membership, the ledger and Braze's attribute all say the same.
Otherwise it counts (and is named) under every kind of drift it shows:

* ``missing_in_braze``: a member in Mixpanel whose Braze attribute lacks the cohort;
* ``extra_in_braze``: Braze holds the cohort for a user Mixpanel does not count in it;
* ``ledger_wrong``: the ledger does not say what Braze holds (a row lost, or a value edited in
  Braze behind the ledger's back);
* ``without_user_id``: a member Mixpanel sampled whose profile lacks ``user_id_property`` (and
  no fallback): it can never reach Braze; named by distinct id.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from reconcile.cohort_loop.braze import cohort_names
from reconcile.cohort_loop.mixpanel import MixpanelMembership
from reconcile.report import Row
from target_braze.client import BrazeClient
from target_braze.ledger import Ledger
from target_braze.ledger.audit import SyncedCohort, held_names, sample_members

KINDS = ("missing_in_braze", "extra_in_braze", "ledger_wrong", "without_user_id")
EXAMPLES = 5


@dataclass
class CohortAudit:
    """One cohort's sample and what each system said about it."""

    cohort_id: str
    name: str
    sampled: list[str] = field(default_factory=list)
    in_mixpanel: set[str] = field(default_factory=set)
    in_ledger: set[str] = field(default_factory=set)
    in_braze: set[str] = field(default_factory=set)
    without_user_id: list[str] = field(default_factory=list)
    queries: int = 0
    braze_requests: int = 0

    def kinds(self) -> dict[str, list[str]]:
        """Each kind of drift -> the users showing it (sorted)."""
        found: dict[str, list[str]] = {kind: [] for kind in KINDS}
        for user in sorted(self.sampled):
            member, braze = user in self.in_mixpanel, user in self.in_braze
            if member and not braze:
                found["missing_in_braze"].append(user)
            if braze and not member:
                found["extra_in_braze"].append(user)
            if (user in self.in_ledger) != braze:
                found["ledger_wrong"].append(user)
        found["without_user_id"] = sorted(self.without_user_id)
        return found

    def drifted(self) -> list[str]:
        """Users (Braze ids) that do not agree, sorted."""
        kinds = self.kinds()
        return sorted({u for kind in KINDS[:3] for u in kinds[kind]})

    def row(self) -> Row:
        """The report row of this cohort."""
        kinds = self.kinds()
        drifted = len(self.drifted()) + len(self.without_user_id)
        sampled = len(self.sampled) + len(self.without_user_id)
        counts = {
            "sampled": sampled,
            "agree": sampled - drifted,
            **{kind: len(ids) for kind, ids in kinds.items()},
            "mixpanel_queries": self.queries,
            "braze_requests": self.braze_requests,
        }
        examples = {kind: ids[:EXAMPLES] for kind, ids in kinds.items() if ids}
        return Row({"cohort_id": self.cohort_id, "name": self.name}, counts, drifted, examples)


class CohortAuditor:
    """Samples and checks cohorts against one ledger namespace, Mixpanel and Braze.

    Args:
        ledger: the ledger, opened read-only (or the repair run's own).
        ns: the namespace of the ``cohort_members`` stream of this destination.
        mixpanel: membership questions to Mixpanel.
        braze: a client whose limiter is sized to ``/users/export/ids``.
        attribute: the cohort attribute (``cohort_attribute``).
        sample_size: users per cohort (half from the ledger, half from Mixpanel when it can).
        seed: makes the sample repeatable; None draws a new one each run.
    """

    def __init__(
        self,
        ledger: Ledger,
        ns: int,
        *,
        mixpanel: MixpanelMembership,
        braze: BrazeClient,
        attribute: str,
        sample_size: int,
        seed: int | None = None,
    ) -> None:
        self.ledger = ledger
        self.ns = ns
        self.mixpanel = mixpanel
        self.braze = braze
        self.attribute = attribute
        self.sample_size = sample_size
        self.rng = random.Random(seed)

    def audit(self, cohort: SyncedCohort, *, listed: bool = True) -> CohortAudit:
        """Draw the cohort's sample and ask all three.

        A cohort Mixpanel no longer lists has no members there: its sample comes from the
        ledger alone and costs no query (target-braze removes such a cohort's values).
        """
        result = CohortAudit(cohort.cohort_id, cohort.name)
        if not listed:
            result.sampled = sample_members(
                self.ledger, self.ns, cohort.cohort_id, self.sample_size, self.rng
            )
            self.check_destination(result)
            return result
        from_mixpanel = self.mixpanel.first_page(
            int(cohort.cohort_id), self.sample_size - self.sample_size // 2, self.rng
        )
        room = self.sample_size - len(from_mixpanel.sampled) - len(from_mixpanel.without_user_id)
        from_ledger = sample_members(self.ledger, self.ns, cohort.cohort_id, room, self.rng)
        result.sampled = list(dict.fromkeys([*from_mixpanel.sampled, *from_ledger]))
        result.without_user_id = from_mixpanel.without_user_id
        self.mixpanel.ask(int(cohort.cohort_id), result.sampled, from_mixpanel)
        result.in_mixpanel = from_mixpanel.members & set(result.sampled)
        result.queries = from_mixpanel.queries
        self.check_destination(result)
        return result

    def check_destination(self, result: CohortAudit) -> None:
        """Fill what the ledger and Braze hold for ``result.sampled``."""
        check_destination(result, self.ledger, self.ns, self.braze, self.attribute)


def check_destination(
    result: CohortAudit, ledger: Ledger, ns: int, braze: BrazeClient, attribute: str
) -> None:
    """Fill what the ledger and Braze hold for ``result.sampled`` (again after a repair)."""
    rows = held_names(ledger, ns, result.cohort_id, result.sampled)
    result.in_ledger = {u for u, names in rows.items() if result.name in names}
    before = braze.counters["requests"]
    held = cohort_names(braze, attribute, result.sampled)
    result.braze_requests += int(braze.counters["requests"] - before)
    result.in_braze = {u for u, names in held.items() if result.name in names}
