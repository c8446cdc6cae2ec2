"""Calling gRPC services without compiled stubs: schemas from reflection or descriptor files."""
