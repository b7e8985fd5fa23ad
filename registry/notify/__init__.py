"""Alert notifications: channels, a transactional outbox, and the notifier that drains it.

Flow: an alert transition (opened, acknowledged, resolved) writes one outbox row per matching
channel in the same transaction (:mod:`registry.notify.outbox`); the :class:`Notifier`
(:mod:`registry.notify.notifier`), a thread in the daemon or its own process, claims due rows,
sends them (:mod:`registry.notify.webhook`, :mod:`registry.notify.email`), records every attempt
and retries failures with jittered exponential backoff. Reminders for alerts still open are
enqueued by the notifier under a unique key, so several notifiers never send one twice.
"""
