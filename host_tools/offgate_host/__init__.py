"""offgate host tools: issuer, accounts, wallet simulator, sync and reports."""
__version__ = "0.1.0"
