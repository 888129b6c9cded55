"""danbao (担保, "guarantee"): a trust-and-payments platform for commerce."""

__version__ = "0.1.0"
