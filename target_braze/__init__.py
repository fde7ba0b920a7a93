"""target-braze: mirror cohort membership (and any user attributes) into Braze."""
