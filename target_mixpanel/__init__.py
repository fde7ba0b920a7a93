"""target-mixpanel: a Singer target for Mixpanel's /import API."""
