"""gunicorn settings, read from the environment so the Procfile line stays the same everywhere."""

import multiprocessing
import os

bind = os.environ.get("WEB_BIND") or f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", min(multiprocessing.cpu_count() * 2 + 1, 9)))
threads = int(os.environ.get("WEB_THREADS", "1"))
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))
graceful_timeout = 20
max_requests = 2000
max_requests_jitter = 200
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def post_fork(server, worker):
    # Tracing per worker process (a no-op without OTEL_EXPORTER_OTLP_ENDPOINT): right even with
    # --preload, where the application was loaded in the master before the fork.
    from config import telemetry

    telemetry.setup("web")


def child_exit(server, worker):
    # With PROMETHEUS_MULTIPROC_DIR set, metrics are summed over workers; drop the dead one's.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
