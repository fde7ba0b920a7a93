"""What Mixpanel says about a sample: who is in the cohort, resolved to Braze ids as the tap does.

Every request goes through the tap's :class:`~tap_mixpanel_cohorts.client.MixpanelQueryClient`
(its retries, its query budget), so the reconciliation and the tap share one set of rules.
Per cohort it costs one ``engage`` query for page 0 of the cohort (members to sample from Mixpanel's
side; for a cohort of at most one page that is the whole membership and nothing more is asked),
else one query for the ledger's sample by ``user_id_property`` (``where``) and, with
``fallback_to_distinct_id``, one more by ``distinct_ids`` for the ids still unresolved.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tap_mixpanel_cohorts.client import MixpanelQueryClient, PageStats
from tap_mixpanel_cohorts.members import id_string, resolve_external_id
from tap_mixpanel_cohorts.settings import Settings as TapSettings


@dataclass
class CohortMembers:
    """What Mixpanel answered for one cohort.

    Attributes:
        members: Braze ids Mixpanel counts in the cohort (among those it was asked about).
        sampled: Braze ids of members drawn from Mixpanel's side.
        without_user_id: distinct ids of sampled members that resolve to no Braze id.
        complete: page 0 held the whole cohort, so every id not in ``members`` is outside it.
        queries: queries this cohort cost.
    """

    members: set[str] = field(default_factory=set)
    sampled: list[str] = field(default_factory=list)
    without_user_id: list[str] = field(default_factory=list)
    complete: bool = False
    queries: int = 0


class MixpanelMembership:
    """Asks the query API about a cohort's members; see the module docstring for its cost."""

    def __init__(self, client: MixpanelQueryClient, settings: TapSettings) -> None:
        self.client = client
        self.user_id_property = settings.user_id_property
        self.fallback = settings.fallback_to_distinct_id

    def _resolve(self, result: object) -> tuple[str | None, str | None]:
        """``(distinct_id, external_id)`` of one engage result, as the tap resolves it."""
        if not isinstance(result, dict):
            return None, None
        distinct_id = id_string(result.get("$distinct_id"))
        if distinct_id is None:
            return None, None
        properties = result.get("$properties")
        properties = properties if isinstance(properties, dict) else {}
        external = resolve_external_id(
            properties, distinct_id, self.user_id_property, self.fallback
        )
        return distinct_id, external

    def _query(
        self, cohort_id: int, filters: dict[str, str], found: CohortMembers
    ) -> list[dict[str, Any]]:
        stats = PageStats()
        results: list[dict[str, Any]] = []
        for page in self.client.iter_member_pages(
            cohort_id, [self.user_id_property], stats, filters=filters
        ):
            results.extend(page)
        found.queries += stats.queries
        return results

    def first_page(self, cohort_id: int, size: int, rng: random.Random) -> CohortMembers:
        """Page 0 of the cohort: up to ``size`` members sampled from it (one query)."""
        found = CohortMembers()
        stats = PageStats()
        pages = self.client.iter_member_pages(cohort_id, [self.user_id_property], stats)
        results = next(pages, [])  # the rest is never asked for
        found.queries += stats.queries
        found.complete = len(results) < (stats.page_size or self.client.page_size)
        resolved = [self._resolve(r) for r in results]
        for _, external in resolved:
            if external is not None:
                found.members.add(external)
        drawn = rng.sample(resolved, min(size, len(resolved)))
        for distinct_id, external in drawn:
            if external is not None:
                found.sampled.append(external)
            elif distinct_id is not None:
                found.without_user_id.append(distinct_id)
        return found

    def ask(self, cohort_id: int, external_ids: Iterable[str], found: CohortMembers) -> None:
        """Add to ``found.members`` which of ``external_ids`` are in the cohort."""
        if found.complete:
            return
        wanted = sorted(set(external_ids) - found.members)
        if not wanted:
            return
        where = " or ".join(_equal_to(self.user_id_property, i) for i in wanted)
        for result in self._query(cohort_id, {"where": where}, found):
            _, external = self._resolve(result)
            if external in wanted:
                found.members.add(external)
        rest = [i for i in wanted if i not in found.members]
        if self.fallback and rest:
            for result in self._query(cohort_id, {"distinct_ids": json.dumps(rest)}, found):
                _, external = self._resolve(result)
                if external in rest:
                    found.members.add(external)


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _equal_to(user_id_property: str, external_id: str) -> str:
    """A ``where`` term matching the profile whose id property reads as ``external_id``.

    The tap reads ids as text (``id_string``: 12 and 12.0 both give "12"), but Mixpanel compares
    typed values, so an id that reads as a number also matches a numeric property.
    """
    key = json.dumps(user_id_property)
    term = f"properties[{key}] == {json.dumps(external_id)}"
    if _NUMBER.fullmatch(external_id):
        term += f" or properties[{key}] == {external_id}"
    return term
