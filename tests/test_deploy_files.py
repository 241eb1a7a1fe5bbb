"""The deployment files say what the README and the design say (no Docker engine here to run
them, so their structure is checked instead)."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_procfile_runs_web_worker_and_beat_with_the_database_scheduler():
    processes = _procfile()
    assert set(processes) == {"web", "worker", "beat"}
    assert processes["web"].startswith("gunicorn config.wsgi:application")
    assert "worker" in processes["worker"] and "-A config.celery_app" in processes["worker"]
    assert "django_celery_beat.schedulers:DatabaseScheduler" in processes["beat"]


def test_compose_runs_the_stack_on_postgres_16_and_redis_7():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert services["db"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    for name in ("web", "worker", "beat"):
        service = services[name]
        assert service["environment"]["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
        assert service["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert "DatabaseScheduler" in services["beat"]["command"]
    assert "deploy" not in services["beat"], "beat must never be scaled"
    assert "healthcheck" in services["web"] and "healthcheck" not in services["worker"]


def test_the_image_leaves_local_state_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".env", ".git"} <= set(ignored)
    assert "HEALTHCHECK" not in (ROOT / "Dockerfile").read_text().replace("# No HEALTHCHECK", "")
