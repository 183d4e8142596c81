"""`python -m services.recorder`."""

from services.recorder.service import serve
from shared.lifecycle import stop_on_signals
from shared.logs import setup_logging
from shared.settings import Settings

if __name__ == "__main__":
    settings = Settings()
    setup_logging(settings)
    serve(settings, stop_on_signals())
