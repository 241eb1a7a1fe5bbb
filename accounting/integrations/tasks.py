"""Celery tasks of the integration hub (filled in with the sync engine)."""


def declare_schedules() -> None:
    return None
