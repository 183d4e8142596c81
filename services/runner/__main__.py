"""`python -m services.runner`."""

from services.runner.service import serve
from shared.lifecycle import stop_on_signals
from shared.logs import setup_logging
from shared.settings import RunnerSettings

if __name__ == "__main__":
    settings = RunnerSettings()
    setup_logging(settings)
    serve(settings, stop_on_signals())
