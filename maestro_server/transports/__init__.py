"""Calling downstream services: the Invoker protocol and its gRPC and HTTP implementations."""
