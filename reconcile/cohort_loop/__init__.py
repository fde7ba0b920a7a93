"""Cohort-loop reconciliation: a sample per synced cohort, Mixpanel vs the ledger vs Braze.

:mod:`.mixpanel` asks Mixpanel's query API who of the sample is in the cohort, :mod:`.braze`
asks Braze's ``/users/export/ids`` what each user's cohort attribute holds, the ledger is read
through :mod:`target_braze.ledger.audit`; :mod:`.audit` compares the three and :mod:`.repair`
fixes drifted users through a normal target-braze run. ``reconcile-cohorts`` (:mod:`.cli`) is the
command (docs/reconciliation.md#cohort-loop).
"""
