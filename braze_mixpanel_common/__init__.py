"""Code shared by the plugins of this distribution (Mixpanel auth, retries, dead letters)."""
