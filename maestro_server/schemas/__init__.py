"""Protobuf schemas without a network: descriptor sets and .proto files → descriptor pools.

Pure and shared: the transports call methods through these pools, and validation checks a
workflow's calls against the same pools before anything runs.
"""
