"""Fault tests: real nodes killed mid-transfer, and transfers through a proxy that damages traffic."""
