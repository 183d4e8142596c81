"""`python -m services.notifier`."""

from services.notifier.bootstrap import serve
from shared.process.lifecycle import stop_on_signals
from shared.process.logs import setup_logging
from shared.process.settings import NotifierSettings

if __name__ == "__main__":
    settings = NotifierSettings()
    setup_logging(settings)
    serve(settings, stop_on_signals())
