"""Events and webhooks: what happened in an account, told to ERPs and frontends, signed, at least once."""
