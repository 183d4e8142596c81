"""`python -m services.api`: serve the HTTP API with uvicorn."""

import uvicorn

from services.api.app import create_app
from shared.process.logs import setup_logging
from shared.process.settings import ApiSettings

# On SIGTERM, requests in flight get this long to finish; then they are ended. Live followers (SSE) never
# finish by themselves: without it, one open follower would keep the API from stopping.
SHUTDOWN_GRACE_S = 5


def main() -> None:
    settings = ApiSettings()
    setup_logging(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )


if __name__ == "__main__":
    main()
