"""tap-mixpanel-cohorts: Mixpanel cohorts and their members as Singer streams."""
