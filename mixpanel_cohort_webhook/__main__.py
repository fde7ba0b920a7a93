"""``python -m mixpanel_cohort_webhook``: the same as the ``mixpanel-cohort-webhook`` script."""

from mixpanel_cohort_webhook.script import main

if __name__ == "__main__":
    main()
