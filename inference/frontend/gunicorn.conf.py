"""gunicorn settings of the web frontend; native mode and Compose run this same file."""

from mlstack.settings import FrontendSettings, load

# Imported in the master, before it binds the port: a restarted frontend's workers accept at once.
import mlstack.frontend.app  # noqa: E402,F401

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
