"""Reconciliation: prove that both loops delivered what their sources held (docs/reconciliation.md).

``reconcile.report`` is the shared part (report rows, the JSON summary, threshold -> exit code);
``reconcile.export_loop`` checks the Currents -> Mixpanel loop.
"""
