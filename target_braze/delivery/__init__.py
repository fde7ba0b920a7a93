"""Delivery to Braze: attributes mode, partner mode, the concurrent sender, data points."""
