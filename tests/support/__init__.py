"""Test support: a fault-injecting TCP proxy and helpers that run real civicshare nodes."""
