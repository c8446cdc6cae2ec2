"""The onboarding example's downstream services: billing and email over gRPC, the CRM over HTTP.

(The auth service is the Node.js server in ../auth-node.) Each records what it did, can be
told to fail, and honours idempotency keys the way Maestro recommends: a repeated key returns
the first result instead of acting twice.
"""
