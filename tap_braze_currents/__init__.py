"""tap-braze-currents: Braze Currents storage exports as Singer streams."""
