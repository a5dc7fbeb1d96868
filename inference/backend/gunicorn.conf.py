"""gunicorn settings of an inference slot; native mode and Compose run this same file."""

import gc

from mlstack.settings import BackendSettings, load

# The app's modules and the model machinery (MLflow's model loader, scikit-learn, the compiled
# path) are imported here, in the master, before it binds the port: the workers of a restarted
# slot fork with them loaded and accept within a second or two (the model from its cache), instead
# of importing for many seconds while connections nginx handed to the new socket wait.
import mlflow.sklearn  # noqa: E402,F401
import sklearn.compose  # noqa: E402,F401
import sklearn.ensemble  # noqa: E402,F401
import sklearn.linear_model  # noqa: E402,F401
import sklearn.pipeline  # noqa: E402,F401

import mlstack.serving.app  # noqa: E402,F401
from mlstack.serving import fastpath  # noqa: E402

fastpath.warm()  # the tree kernel's machine code, inherited by every worker (see fastpath.warm)
_settings = load(BackendSettings)

bind = f"{_settings.BACKEND_BIND}:{_settings.BACKEND_PORT}"
workers = _settings.BACKEND_WORKERS
worker_class = "gthread"  # keep-alive from nginx; requests are short and CPU-bound
threads = 2
timeout = 30
graceful_timeout = 20
keepalive = 15
proc_name = f"mlstack-slot-{_settings.SLOT.lower()}"
accesslog = None  # nginx logs requests; slots log decisions
errorlog = "-"
loglevel = "info"


def pre_fork(server, worker):  # noqa: ANN001, ANN201 - gunicorn hook signature
    """Move what the master holds out of the collector's reach: a collection in a worker would write to
    every object it visits and so copy each page the worker shares with the master."""
    gc.freeze()


def child_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn hook signature
    """Mark a dead worker's metric files so its live gauges stop counting (multiprocess mode)."""
    if _settings.PROMETHEUS_MULTIPROC_DIR:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker):  # noqa: ANN001, ANN201
    """Flush the worker's prediction log before it goes (a killed worker's journal is replayed)."""
    app = getattr(worker, "wsgi", None)
    state = getattr(app, "extensions", {}).get("mlstack") if app is not None else None
    if state is not None:
        state.close()
