"""Events: the transactional outbox every part writes to, and CloudEvents webhooks.

A part calls `service.emit(session, ...)` inside its own transaction; the dispatcher
(`dispatcher.py`, in every server process and in `felles worker`) fans each event out to
the matching subscriptions and delivers it, signed per Standard Webhooks.
"""
