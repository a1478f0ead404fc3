"""Gunicorn settings, read from the working directory (`gunicorn src.main:app` finds this file).

The seed's gunicorn.conf.py (bind 0.0.0.0:5000, workers 4, max_requests 1000 with jitter 100,
timeout 30, keepalive 5) with its values from GUNICORN_* variables, so every host runs the same
file. Command-line options win: opsbook's unit passes --bind (a systemd socket) and --workers.
gthread rather than the seed's gevent: one dependency less, and the app does no long I/O.
"""

import os

wsgi_app = "src.main:app"
proc_name = "pdfsmall"

bind = [item.strip() for item in os.environ.get("GUNICORN_BIND", "127.0.0.1:5000").split(",") if item.strip()]
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "2"))
worker_class = "gthread" if threads > 1 else "sync"
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "1000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "100"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")

# Gunicorn >= 25.1 opens a control socket per user by default: two instances of one app on a
# host (blue-green slots) would take each other's. Off unless a path is given.
if os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
else:
    control_socket_disable = True
