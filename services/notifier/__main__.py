"""`python -m services.notifier`."""

from services.notifier.service import serve
from shared.lifecycle import stop_on_signals
from shared.logs import setup_logging
from shared.settings import NotifierSettings

if __name__ == "__main__":
    settings = NotifierSettings()
    setup_logging(settings)
    serve(settings, stop_on_signals())
