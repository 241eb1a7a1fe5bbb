"""The Celery app the fault tests start real workers with: Kontor's own app (config.celery_app)
plus two test-only changes, so that nothing in the application carries a test hook.

- Redelivery in seconds: a short visibility timeout (FAULTS_VISIBILITY_TIMEOUT) and an unacked
  sweep every second, so a message a killed worker held comes back within the test.
- A slow chunk on request: while the file FAULTS_DIR/slow exists, a chunk that starts after
  FAULTS_SLOW_AFTER chunks are done writes its payslips (inside its open transaction), leaves a
  marker FAULTS_DIR/inside-<pid> and sleeps, so the test can SIGKILL the worker mid-chunk.
- A late claim on request: while FAULTS_DIR/slow-claim exists, a run waits two seconds before
  it claims its period, so that duplicate tasks (two beats) overlap for certain.
"""

import os
import pathlib
import time

from config.celery_app import app

__all__ = ["app"]

_folder = pathlib.Path(os.environ.get("FAULTS_DIR", "/nonexistent"))
_visibility = int(os.environ.get("FAULTS_VISIBILITY_TIMEOUT", "0"))

if _visibility:
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "visibility_timeout": _visibility,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }


def _install_hooks() -> None:
    from payroll import processing
    from payroll.models import PayrollRun

    real_write = processing._write_payslips
    after = int(os.environ.get("FAULTS_SLOW_AFTER", "2"))

    def write_then_stall(run, computed, status):
        written = real_write(run, computed, status)
        if (_folder / "slow").exists():
            done = PayrollRun.objects.filter(pk=run.pk).values_list("chunks_done", flat=True)
            if done and done[0] >= after:
                (_folder / f"inside-{os.getpid()}").write_text(str(run.pk))
                time.sleep(300)  # the test kills the worker long before this ends
        return written

    processing._write_payslips = write_then_stall

    real_claim = processing.PayrollProcessor.claim

    def late_claim(self, force=False):
        if (_folder / "slow-claim").exists():
            time.sleep(2)
        return real_claim(self, force=force)

    processing.PayrollProcessor.claim = late_claim


if _folder.is_dir():
    from celery.signals import worker_process_init, worker_ready

    # Prefork children import the app before the fork; patch in each of them.
    worker_process_init.connect(lambda **_: _install_hooks(), weak=False)
    worker_ready.connect(lambda **_: (_folder / f"ready-{os.getpid()}").touch(), weak=False)
