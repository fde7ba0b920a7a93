"""Export-loop reconciliation: Currents files vs Mixpanel's hourly event counts.

For a window of hours, :mod:`.expected` counts what the Currents files hold per Mixpanel event
name and hour (after target-mixpanel's mapping and skip rules, de-duplicated as Mixpanel does),
:mod:`.found` asks Mixpanel's Aggregate Event Counts for the same names and hours within the
query budget, and :mod:`.check` compares them into a :class:`reconcile.report.Report`.
Run it with ``reconcile-export-loop`` (:mod:`.cli`; docs/reconciliation.md).
"""
