"""``mixpanel-cohort-webhook``: receives Mixpanel's cohort-sync webhooks into the cohort spool."""
