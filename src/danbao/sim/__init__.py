"""Simulations that drive danbao the way a marketplace would (the demo, the trade benchmark)."""
