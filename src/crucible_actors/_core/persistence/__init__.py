"""Persistence: the store port, the run observer, recovery, owners and stored records."""
