"""Authentication: the Basic scheme, user sources, the verification cache and throttling."""
