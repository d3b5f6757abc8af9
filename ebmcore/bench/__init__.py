"""``python -m ebmcore bench``: the registry of speed measurements and ebmcore's own rows."""
