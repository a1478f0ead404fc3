# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The app_problems filter: what is wrong with the app variables, every problem at once."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ansible_collections.opsbook.webstack.plugins.filter.app_backends import app_backends
from ansible_collections.opsbook.webstack.plugins.filter.app_commands import app_commands_problems
from ansible_collections.opsbook.webstack.plugins.filter.compose_problems import compose_problems
from ansible_collections.opsbook.webstack.plugins.filter.health_judge import health_rule_problems
from ansible_collections.opsbook.webstack.plugins.module_utils.app_commands import workdir_problems

DOCUMENTATION = r"""
name: app_problems
short_description: Every problem of the app variables, each naming the variable and the accepted values
version_added: 0.2.0
description:
  - A pure function, run by the validate role's C(main) entry point after Ansible checked the
    variables' types against its argument specs, before any host is reached.
  - Removed variables that are still set (C(validate_removed_variables)).
  - C(app_name) and C(app_user) as unit, user and path names, C(app_root) an absolute path,
    C(app_http_port) a port number.
  - Each C(app_workers) item - a lower-case name; a kind of C(celery), C(celery-beat), C(rq) or
    C(rq-scheduler); for celery a non-empty C(queues) list and a C(concurrency) above 0; for rq a
    non-empty list of queue names, C(count) from 1 to 64 and no C(concurrency), a dotted
    C(worker_class); no RQ worker with blue-green C(app_slots).
  - C(app_celery_app) set when an C(app_workers) item is of kind C(celery) or C(celery-beat) (checked only when
    the input holds the key; an app without Celery workers needs none).
  - C(app_install_extras) only with C(app_installer=pyproject), each an extra's name;
    C(app_extra_requirements) not with C(pipenv) or C(poetry) (they install only what their lock pins),
    each a requirement without spaces that is not a pip option (checked only when the input holds the key).
  - C(app_slots) giving the load balancer servers (a malformed one fails naming C(app_slots), as
    P(opsbook.webstack.app_backends#filter) does); one celery-beat at most, one rq-scheduler at
    most, and distinct unit names (an rq item with C(count) N names C(<name>-1) .. C(<name>-N)).
  - C(app_workdir) a directory inside the release, relative to it, without C(..) (checked only when the input
    holds the key).
  - With C(app_redis) false (an app that uses no Redis), no RQ worker, no C(app_broker) of kind redis, no
    Celery worker without C(app_broker) (its broker would be the Redis of C(app_redis_*)) and no C(redis://)
    or C(rediss://) C(app_result_backend); the messages name the variable and never print the broker's or the
    result backend's credentials (checked only when the input holds C(app_redis)).
  - The companion filter C(app_required_unset) (input the views of P(opsbook.webstack.play_host_vars#filter),
    argument the C(app_redis_*) names) gives each host's unset required variables, the C(app_redis_*) ones only
    where C(app_redis) is true (the default), for P(opsbook.webstack.by_host#filter).
  - The companion filter C(app_problems_by_host) runs this check, then C(app_commands_problems) and
    C(health_rule_problems), on each host's view from P(opsbook.webstack.play_host_vars#filter)
    (input the views, arguments C(validate_removed_variables) and C(groups)) and returns
    a list of problems per host for P(opsbook.webstack.by_host#filter), in the validate role's C(main) entry point.
options:
  _input:
    description:
      - The app variables - C(app_name), C(app_user), C(app_root), C(app_http_port), C(app_workers),
        C(app_slots), and optionally C(app_celery_app), C(app_installer), C(app_install_extras),
        C(app_extra_requirements), C(app_workdir), C(app_redis), C(app_broker) and C(app_result_backend).
    type: dict
    required: true
  removed:
    description: The items of C(validate_removed_variables) (C(name), C(use)) whose name is set.
    type: list
    elements: dict
    default: []
  groups:
    description: The inventory's groups, for C(app_slots).
    type: dict
    default: {}
  app_group:
    description: The app group's name (C(opsbook_group_app)), for C(app_slots).
    type: str
    default: app
"""

EXAMPLES = r"""
- name: App variables are well formed
  ansible.builtin.assert:
    that: __problems | length == 0
    fail_msg: "{{ __problems | join(' ') }}"
  vars:
    __problems: >-
      {{ {'app_name': app_name, 'app_user': app_user, 'app_root': app_root, 'app_http_port': app_http_port,
          'app_workers': app_workers, 'app_slots': app_slots | default({})}
         | opsbook.webstack.app_problems(groups=groups, app_group=opsbook_group_app) }}
"""

RETURN = r"""
_value:
  description: One message per problem; empty when the variables are right.
  type: list
  elements: str
"""

WORKER_KINDS = ("celery", "celery-beat", "rq", "rq-scheduler")
_APP_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_APP_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_WORKER_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
_QUEUE = re.compile(r"^[A-Za-z0-9_.:-]+$")
_EXTRA = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_REQUIREMENT = re.compile(r"^[A-Za-z0-9][^\s]*$")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def _matches(pattern: re.Pattern, value) -> bool:
    """Jinja's `is match`: the value as text, matched from its start."""
    return value is not None and pattern.match(str(value)) is not None


def _is_int(value) -> bool:
    """Jinja's `is integer`: an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _as_int(value) -> int:
    """Jinja's `| int`: the number, 0 when it is none."""
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return 0


def _is_list(value) -> bool:
    """A sequence that is not a string (Jinja's `is sequence and is not string`)."""
    return not isinstance(value, str) and hasattr(value, "__len__") and hasattr(value, "__getitem__")


def _len(value) -> int:
    """Jinja's `| length`, 0 for a value that has none (a refusal either way)."""
    try:
        return len(value)
    except TypeError:
        return 0


def _worker_problems(item: Mapping, slots: bool) -> list[str]:
    name, kind = item.get("name"), item.get("kind")
    queues = item.get("queues", [])
    if not (
        name is not None
        and _matches(_WORKER_NAME, name)
        and kind in WORKER_KINDS
        and (kind != "celery" or (_len(queues) > 0 and _as_int(item.get("concurrency", 0)) > 0))
    ):
        shown_name, shown_kind = ("(no name)" if name is None else name), ("none" if kind is None else kind)
        return [
            f"app_workers item {shown_name} (kind {shown_kind})"
            " is invalid: each needs a lower-case name, kind celery, celery-beat, rq or rq-scheduler, and for celery"
            " a non-empty queues list and concurrency > 0."
        ]
    if kind not in ("rq", "rq-scheduler"):
        return []
    problems = []
    if kind == "rq" and not (_is_list(queues) and len(queues) > 0):
        problems.append(f"app_workers item {name} (kind rq) needs queues: a non-empty list of RQ queue names.")
    if "queues" in item and (not _is_list(queues) or any(not _matches(_QUEUE, q) for q in queues)):
        problems.append(
            f"app_workers item {name} (kind {kind}) queues ({queues}) must be a list of queue names"
            " (letters, digits, _ . : -)."
        )
    if "concurrency" in item:
        problems.append(
            f"app_workers item {name} (kind {kind}) sets concurrency, which RQ has not: an RQ worker runs one job"
            " at a time; set count (rq: that many worker units) instead."
        )
    count = item.get("count")
    if "count" in item and not (kind == "rq" and _is_int(count) and 0 < count <= 64):
        why = (
            "an rq-scheduler runs once, it has no count."
            if kind == "rq-scheduler"
            else "the number of worker units, an integer from 1 to 64."
        )
        problems.append(f"app_workers item {name} (kind {kind}) count ({count}) is invalid: {why}")
    if "worker_class" in item and not _matches(_DOTTED, item["worker_class"]):
        problems.append(
            f"app_workers item {name} (kind {kind}) worker_class ({item['worker_class']}) must be a dotted Python"
            " path such as rq.worker.SimpleWorker."
        )
    if slots:
        problems.append(
            f"app_workers item {name} is kind {kind} but app_slots is set: RQ workers run under the in-place deploy"
            " only (blue-green slots run Celery workers); remove app_slots or the RQ workers."
        )
    return problems


def _installer_problems(app: Mapping) -> list[str]:
    """app_install_extras and app_extra_requirements against app_installer."""
    problems = []
    installer = app.get("app_installer") or "requirements"
    extras = app.get("app_install_extras") or []
    requirements = app.get("app_extra_requirements") or []
    if not _is_list(extras) or not all(_matches(_EXTRA, extra) for extra in extras):
        problems.append(f"app_install_extras must be a list of extra names such as [database] (got {extras}).")
    elif extras and installer != "pyproject":
        problems.append(
            f"app_install_extras ({', '.join(extras)}) needs app_installer pyproject (got {installer}):"
            " extras are the project's own optional dependencies."
        )
    bad = [req for req in requirements if not _matches(_REQUIREMENT, req)] if _is_list(requirements) else [requirements]
    if bad:
        problems.append(
            f"app_extra_requirements must be a list of requirements such as gunicorn==23.0.0, without spaces"
            f" and not pip options: {', '.join(map(str, bad))} is not."
        )
    elif requirements and installer in ("pipenv", "poetry"):
        problems.append(
            f"app_extra_requirements ({', '.join(requirements)}) cannot be installed with app_installer {installer},"
            " which installs only what its lock pins by hash: add them to the lock."
        )
    return problems


def _truth(value) -> bool:
    """Ansible's `| bool`: a string from -e or an INI inventory reads as YAML does."""
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "on", "1", "true", "y", "t")
    return bool(value)


def _redis_problems(app: Mapping, workers: list) -> list[str]:
    """What needs Redis while app_redis is false. Never prints app_broker's or app_result_backend's value:
    both can hold a password."""
    if _truth(app.get("app_redis", True)):
        return []
    off = "but app_redis is false (the app uses no Redis)"
    fix = "or set app_redis: true with app_redis_host, app_redis_port, app_redis_db and app_redis_password."
    problems = []
    rq = [
        f"{item.get('name')} (kind {item.get('kind')})"
        for item in workers
        if item.get("kind") in ("rq", "rq-scheduler")
    ]
    if rq:
        problems.append(f"app_workers declares {', '.join(rq)}, {off}: RQ runs on Redis. Remove them, {fix}")
    broker = app.get("app_broker") or {}
    celery = [str(item.get("name")) for item in workers if item.get("kind") in ("celery", "celery-beat")]
    if isinstance(broker, Mapping) and broker and str(broker.get("kind") or "redis") == "redis":
        problems.append(f"app_broker is of kind redis, {off}. Make it kind rabbitmq, {fix}")
    elif not broker and celery:
        problems.append(
            f"app_workers declares {', '.join(celery)} of kind celery or celery-beat, whose broker is the Redis of"
            f" app_redis_* while app_broker is unset, {off}. Set app_broker (kind rabbitmq), {fix}"
        )
    backend = app.get("app_result_backend")
    if isinstance(backend, str) and backend.strip().lower().startswith(("redis://", "rediss://", "redis+socket://")):
        problems.append(f"app_result_backend is a Redis URL, {off}. Use another result backend, {fix}")
    return problems


def _unit_names(workers: list) -> list[str]:
    names = []
    for item in workers:
        if "name" not in item:
            continue
        count = item.get("count", 1)
        count = _as_int(count) if item.get("kind", "") == "rq" and _is_int(count) else 1
        names += [str(item["name"])] if count == 1 else [f"{item['name']}-{n}" for n in range(1, count + 1)]
    return names


def app_problems(app, removed=None, groups=None, app_group="app") -> list[str]:
    app = dict(app or {})
    problems = [f"Variable '{item['name']}' is no longer read; use '{item['use']}' instead." for item in removed or []]
    name, user, root, port = (app.get(key) for key in ("app_name", "app_user", "app_root", "app_http_port"))
    if not (
        _matches(_APP_NAME, name)
        and _matches(_APP_USER, user)
        and _matches(re.compile(r"^/.+"), root)
        and _is_int(port)
        and 0 < port < 65536
    ):
        problems.append(
            f"app_name ({name}) and app_user ({user}) must be lower-case names of at most 32 characters,"
            f" app_root ({root}) an absolute path, app_http_port ({port}) a port number."
        )
    workers = [item for item in app.get("app_workers") or [] if isinstance(item, Mapping)]
    slots = app.get("app_slots") or {}
    for item in workers:
        # Under app_runtime compose a slot's RQ workers are services of its project, moved at the switch
        # like its Celery workers; under systemd the RQ units belong to the in-place layout only.
        problems += _worker_problems(item, bool(slots) and app.get("app_runtime", "systemd") != "compose")
    if slots and not app_backends(slots, groups or {}, app_group, port):
        problems.append("app_slots gives no server for the load balancer.")
    beats = [str(item.get("name")) for item in workers if item.get("kind") == "celery-beat"]
    if len(beats) > 1:
        problems.append(
            f"app_workers declares {', '.join(beats)} as celery-beat: beat must run exactly once, declare one."
        )
    units = _unit_names(workers)
    doubles = [unit for unit in dict.fromkeys(units) if units.count(unit) > 1]
    if doubles:
        problems.append(
            f"app_workers gives two units the name {app.get('app_name')}-"
            + f".service, {app.get('app_name')}-".join(doubles)
            + ".service: worker names must differ, and an rq item with count N also names <name>-1 .. <name>-N."
        )
    celery = [str(item.get("name")) for item in workers if item.get("kind") in ("celery", "celery-beat")]
    celery_app = app.get("app_celery_app")
    if "app_celery_app" in app and celery and not (isinstance(celery_app, str) and celery_app.strip()):
        problems.append(
            f"app_celery_app must name the Celery application (celery -A <name>): app_workers declares"
            f" {', '.join(celery)} of kind celery or celery-beat. An app without Celery workers needs none."
        )
    problems += _installer_problems(app)
    if "app_workdir" in app:
        problems += workdir_problems(app["app_workdir"])
    if "app_redis" in app:
        problems += _redis_problems(app, workers)
    schedulers = [str(item.get("name")) for item in workers if item.get("kind") == "rq-scheduler"]
    if len(schedulers) > 1:
        problems.append(
            f"app_workers declares {', '.join(schedulers)} as rq-scheduler: the RQ scheduler must run exactly once,"
            " declare one."
        )
    return problems


# The app variables app_problems reads from a host's view; app_celery_app is always given ('' when
# unset), so that a Celery worker without it is refused.
_VIEW_KEYS = ("app_name", "app_user", "app_root", "app_http_port", "app_workers")


def app_problems_by_host(views, removed=None, groups=None) -> dict:
    """{host: problems} over play_host_vars' views: app_problems, app_commands_problems, health_rule_problems."""
    problems = {}
    for host, view in dict(views or {}).items():
        values = dict(view.get("values") or {})
        app = {key: values.get(key) for key in _VIEW_KEYS}
        app["app_slots"] = values.get("app_slots", {})
        app["app_celery_app"] = values.get("app_celery_app", "")
        for key in (
            "app_installer",
            "app_install_extras",
            "app_extra_requirements",
            "app_workdir",
            "app_redis",
            "app_broker",
            "app_result_backend",
            "app_runtime",
        ):
            if key in values:
                app[key] = values[key]
        set_removed = [item for item in removed or [] if item["name"] in values]
        problems[host] = (
            app_problems(app, removed=set_removed, groups=groups, app_group=values.get("opsbook_group_app", "app"))
            + app_commands_problems(values.get("app_commands"))
            + health_rule_problems(values.get("app_health_expect"), values.get("app_version_source"))
            + compose_problems(values)
        )
    return problems


def app_required_unset(views, redis_names=None) -> dict:
    """{host: unset required variables} over play_host_vars' views (which also read app_redis): the redis_names
    (app_redis_*) count only where app_redis is true, its default; app_redis itself is never required."""
    redis_names = list(redis_names or [])
    unset = {}
    for host, view in dict(views or {}).items():
        redis = _truth(dict(view.get("values") or {}).get("app_redis", True))
        unset[host] = [
            name for name in view.get("unset") or [] if name != "app_redis" and (redis or name not in redis_names)
        ]
    return unset


class FilterModule:
    def filters(self):
        return {
            "app_problems": app_problems,
            "app_problems_by_host": app_problems_by_host,
            "app_required_unset": app_required_unset,
        }
