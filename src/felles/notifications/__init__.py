"""Notifications: short messages to people by e-mail and SMS (login codes, receipts)."""
