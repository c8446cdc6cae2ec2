"""Maestro: a gRPC-native saga orchestrator."""

__version__ = "0.1.0"
