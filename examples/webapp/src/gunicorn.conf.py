"""Gunicorn settings: `gunicorn -c gunicorn.conf.py` from the project root.

Values come from the environment so every slot and host runs the same file;
command-line options (`-b 127.0.0.1:8001`) still override them.
"""

import os
from pathlib import Path

wsgi_app = "journal.wsgi:application"
proc_name = "journal"

bind = [item.strip() for item in os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",") if item.strip()]
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "2"))
worker_class = "gthread" if threads > 1 else "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Behind nginx/HAProxy on the same host or network: trust their X-Forwarded-* headers.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")

# Gunicorn >= 25.1 opens a control socket (for `gunicornc`) at $XDG_RUNTIME_DIR/gunicorn.ctl or
# $HOME/.gunicorn/gunicorn.ctl by default: one path per user, so two slots of one app on a host
# would take each other's socket. Off unless a path is given, one per instance.
if os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
else:
    control_socket_disable = True

if os.environ.get("GUNICORN_PIDFILE"):
    pidfile = os.environ["GUNICORN_PIDFILE"]

_log_dir = os.environ.get("LOG_DIR")
if _log_dir:
    accesslog = str(Path(_log_dir) / "gunicorn_access.log")
    errorlog = str(Path(_log_dir) / "gunicorn_error.log")
else:
    accesslog = "-"
    errorlog = "-"
