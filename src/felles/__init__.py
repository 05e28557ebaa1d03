"""Felles: the common digital building blocks of a public sector, in one install."""

__version__ = "0.1.0"
