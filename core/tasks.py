import logging
import socket

from celery import shared_task
from django.db.models import F
from django.utils import timezone

from core.models import ServiceHeartbeat

log = logging.getLogger(__name__)

HEARTBEAT_TASK = "core.tasks.heartbeat"


@shared_task(name=HEARTBEAT_TASK, ignore_result=True)
def heartbeat() -> None:
    """Run by beat every 30 seconds; proves beat schedules and a worker executes them."""
    now = timezone.now()
    detail = f"worker on {socket.gethostname()}"
    updated = ServiceHeartbeat.objects.filter(name="celery").update(
        last_seen=now, detail=detail, beats=F("beats") + 1
    )
    if not updated:
        ServiceHeartbeat.objects.get_or_create(
            name="celery", defaults={"last_seen": now, "detail": detail, "beats": 1}
        )
