"""One login for every public service (OpenID Connect provider) and machine tokens."""
