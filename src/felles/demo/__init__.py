"""A deterministic synthetic country for trying out and testing Felles."""
