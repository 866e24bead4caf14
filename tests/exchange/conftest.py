"""Fixtures for the exchange tests; their code lives in transfer_support.py beside the helpers."""

from tests.exchange.transfer_support import agreement, transport, xnode

__all__ = ["agreement", "transport", "xnode"]
