"""`python -m services.api`: serve the HTTP API with uvicorn, in `FASTLANE_API_PROCESSES` processes.

With more than one, uvicorn's own supervisor binds the port and starts that many worker processes that
accept on it (each with its own Kafka producer, Cassandra session and live-output consumer); it restarts a
worker that dies or stops answering. A worker dies with its supervisor (Linux parent-death signal), so a
supervisor killed with -9 leaves no worker behind holding the port. The workers' metrics go to files in a
directory of their own (prometheus-client's multiprocess mode), made fresh at each start and removed at the end,
so `/metrics` answers the same counts whichever worker takes the scrape.
"""

import ctypes
import os
import shutil
import signal
import tempfile
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from services.api.app import create_app
from shared.process.logs import setup_logging
from shared.process.settings import ApiSettings

# On SIGTERM, requests in flight get this long to finish; then they are ended. Live followers (SSE) never
# finish by themselves: without it, one open follower would keep the API from stopping.
SHUTDOWN_GRACE_S = 5
WORKER_HEALTHCHECK_S = 30  # a worker silent this long is hung: killed and started again
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """SIGTERM this process when its parent (uvicorn's supervisor) ends, whatever killed it."""
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the worker outlives a killed supervisor, as uvicorn's do
        return
    if os.getppid() != parent:  # the parent was already gone before the signal was asked for
        os.kill(os.getpid(), signal.SIGTERM)


def worker_app() -> FastAPI:
    """The application of one worker process (uvicorn calls it in each; see the module's doc)."""
    die_with_parent()
    settings = ApiSettings()
    setup_logging(settings)
    return create_app(settings)


SAMPLES_PREFIX = "fastlane-api-metrics-"


def _drop_orphaned_samples() -> None:
    """Remove the metrics directories of API supervisors that are gone (killed with -9: no `finally` ran)."""
    for found in Path(tempfile.gettempdir()).glob(f"{SAMPLES_PREFIX}*-*"):
        pid = found.name[len(SAMPLES_PREFIX) :].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(found, ignore_errors=True)


def main() -> None:
    settings = ApiSettings()
    setup_logging(settings)
    common = {
        "host": settings.api_host,
        "port": settings.api_port,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": SHUTDOWN_GRACE_S,
    }
    if settings.api_processes == 1:
        uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]
    else:
        _drop_orphaned_samples()
        samples = tempfile.mkdtemp(prefix=f"{SAMPLES_PREFIX}{os.getpid()}-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = samples  # read by each worker as it starts (a new interpreter)
        try:
            uvicorn.run(
                "services.api.__main__:worker_app",
                factory=True,
                workers=settings.api_processes,
                # uvicorn's supervisor kills a worker that does not answer its ping within this (default 5 s);
                # on a small machine under a broker's or a node's failover (the cluster test: load average 15-30)
                # a healthy worker missed it and was killed with its requests in flight.
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
                **common,  # type: ignore[arg-type]
            )
        finally:
            shutil.rmtree(samples, ignore_errors=True)


if __name__ == "__main__":
    main()
