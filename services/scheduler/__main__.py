"""`python -m services.scheduler`."""

from services.scheduler.bootstrap import serve
from shared.process.lifecycle import stop_on_signals
from shared.process.logs import setup_logging
from shared.process.settings import SchedulerSettings

if __name__ == "__main__":
    settings = SchedulerSettings()
    setup_logging(settings)
    serve(settings, stop_on_signals())
