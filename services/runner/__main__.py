"""`python -m services.runner`."""

from services.runner.bootstrap import serve
from shared.process.lifecycle import stop_on_signals
from shared.process.logs import setup_logging
from shared.process.settings import RunnerSettings

if __name__ == "__main__":
    settings = RunnerSettings()
    setup_logging(settings)
    serve(settings, stop_on_signals())
