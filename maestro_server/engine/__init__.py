"""The saga engine: runs steps by dependency and compensates when one fails for good."""
