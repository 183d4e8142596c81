"""`python -m services.api`: serve the HTTP API with uvicorn."""

import uvicorn

from services.api.app import create_app
from shared.process.logs import setup_logging
from shared.process.settings import ApiSettings


def main() -> None:
    settings = ApiSettings()
    setup_logging(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
