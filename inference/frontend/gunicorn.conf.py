"""gunicorn settings of the web frontend; native mode and Compose run this same file."""

# The master imports only the settings, never the app: a restart (`Deployment.restart`) forks new workers
# that load the code on disk, and retires an old one only once a new one serves (its title says so).
from setproctitle import setproctitle

from mlstack.deployment import READY
from mlstack.settings import FrontendSettings, load

_settings = load(FrontendSettings)

bind = f"{_settings.FRONTEND_BIND}:{_settings.FRONTEND_PORT}"
workers = _settings.FRONTEND_WORKERS
worker_class = "gthread"  # pages wait on the API and the registry: threads overlap that waiting
threads = 4
timeout = 30
graceful_timeout = 10
keepalive = 15
proc_name = "mlstack-frontend"
accesslog = None  # nginx logs requests
errorlog = "-"
loglevel = "info"


def post_worker_init(worker) -> None:  # noqa: ANN001 - gunicorn's hook signature
    """Mark this worker as serving in its process title (gunicorn's own titles read `gunicorn: worker [name]`)."""
    setproctitle(f"gunicorn: worker [{proc_name}] {READY}")
