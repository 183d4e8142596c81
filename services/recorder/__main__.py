"""`python -m services.recorder`."""

from services.recorder.bootstrap import serve
from shared.process.lifecycle import stop_on_signals
from shared.process.logs import setup_logging
from shared.process.settings import Settings

if __name__ == "__main__":
    settings = Settings()
    setup_logging(settings)
    serve(settings, stop_on_signals())
