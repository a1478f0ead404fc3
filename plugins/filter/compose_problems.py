# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The compose_problems filter: what app_runtime=compose cannot take, each problem naming its variable."""

from __future__ import annotations

import re
from collections.abc import Mapping

DOCUMENTATION = r"""
name: compose_problems
short_description: The problems of an app description for the compose runtime, each naming its variable
version_added: 0.4.0
description:
  - Takes a host's app variables (a mapping of C(app_*) values) and returns a list of sentences, empty
    when the description is usable. Only C(app_runtime=compose) is checked; with V(systemd) (or
    unset) the list is empty.
  - Refused under compose, before anything changes - no C(app_compose_file); a service, image or
    Dockerfile name that Compose or Docker would refuse; C(app_image) that does not name a repository in a
    registry (C(host[:port]/path), no tag), or set together with C(app_image_name); an C(app_commands)
    entry with C(run=build) (under compose the build is the image's, so run such a step in the Dockerfile);
    C(app_db_compose_service) that is not a service name or is C(app_compose_service);
    C(app_db_compose_project) that is not a project name, or is set without C(app_db_compose_service).
  - C(app_db_compose_service) and C(app_media_volume) are refused with any other runtime (they need
    C(app_runtime=compose)); C(app_media_volume) must be a Docker volume name.
  - C(app_slots) is accepted - blue-green slots are the projects C(<app_name>-blue) and
    C(<app_name>-green); C(app_name) is already a valid Compose project name (app_problems).
options:
  _input:
    description: The app variables of one host.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Refuse a compose description without its compose file
  ansible.builtin.assert:
    that: __problems | length == 0
    fail_msg: "{{ __problems | join(' ') }}"
  vars:
    __problems: >-
      {{ {'app_runtime': app_runtime, 'app_compose_file': app_compose_file} | opsbook.webstack.compose_problems }}
"""

RETURN = r"""
_value:
  description: One sentence per problem; empty when there is none.
  type: list
  elements: str
"""

# Compose service names, image repository names (lower case, path components) and a relative path.
_SERVICE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_IMAGE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")


# app_image: a repository in a registry, whose first component is the registry's host (a dot or a port
# in it, or localhost: else Docker would read it as a Docker Hub namespace), no tag and no digest.
_REGISTRY_IMAGE = re.compile(
    r"^(?:localhost|[a-z0-9-]+(?:\.[a-z0-9-]+)+|[a-z0-9-]+(?:\.[a-z0-9-]+)*:[0-9]{1,5})"
    r"(?::[0-9]{1,5})?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)+$"
)
_VOLUME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def _db_service_problems(app: dict) -> list[str]:
    """app_db_compose_service: PostgreSQL as a service of a compose project on the db host
    (app_db_compose_project, by default the app's own, app_name)."""
    service = app.get("app_db_compose_service") or ""
    project = app.get("app_db_compose_project") or ""
    if project and not (isinstance(project, str) and _PROJECT.match(project)):
        return [
            f"app_db_compose_project must be a compose project name (lower-case letters, digits, _ and -), or empty"
            f" for app_name (got {project!r})."
        ]
    if project and service == "":
        return [f"app_db_compose_project ({project!r}) is only read with app_db_compose_service: set both, or neither."]
    if service == "":
        return []
    if app.get("app_runtime", "systemd") != "compose":
        return [
            f"app_db_compose_service ({service!r}) needs app_runtime compose: it names the service of the app's"
            " compose project that runs PostgreSQL on the db host. Leave it empty for a PostgreSQL installed on"
            " the db host."
        ]
    if not (isinstance(service, str) and _SERVICE.match(service)):
        return [f"app_db_compose_service must be a compose service name, or empty (got {service!r})."]
    if service == app.get("app_compose_service", "web"):
        return [
            f"app_db_compose_service ({service!r}) must not be app_compose_service: PostgreSQL runs in a service"
            " of its own."
        ]
    return []


def _media_volume_problems(app: dict) -> list[str]:
    volume = app.get("app_media_volume") or ""
    if volume == "":
        return []
    if app.get("app_runtime", "systemd") != "compose":
        return [
            f"app_media_volume ({volume!r}) needs app_runtime compose: it names the Docker volume that holds the"
            " media on the app hosts. Leave it empty for <app_root>/shared/media."
        ]
    if not (isinstance(volume, str) and _VOLUME.match(volume)):
        return [
            f"app_media_volume must be a Docker volume name as docker volume ls shows it, such as journal_media"
            f" (got {volume!r}), or empty."
        ]
    return []


def compose_problems(app) -> list[str]:
    app = dict(app or {}) if isinstance(app, Mapping) else {}
    if app.get("app_runtime", "systemd") != "compose":
        return _db_service_problems(app) + _media_volume_problems(app)
    problems = _db_service_problems(app) + _media_volume_problems(app)
    compose_file = app.get("app_compose_file")
    if not (isinstance(compose_file, str) and compose_file.strip()):
        problems.append(
            "app_compose_file must name the app's compose file template (app_runtime is compose), for example"
            " compose.yml.j2 next to the inventory."
        )
    service = app.get("app_compose_service", "web")
    if not (isinstance(service, str) and _SERVICE.match(service)):
        problems.append(f"app_compose_service must be a compose service name (got {service!r}).")
    image = app.get("app_image_name") or ""
    if not (isinstance(image, str) and (image == "" or _IMAGE.match(image))):
        problems.append(
            f"app_image_name must be an image repository name in lower case, such as journal or team/journal"
            f" (got {image!r}); empty is app_name."
        )
    registry_image = app.get("app_image") or ""
    if registry_image and not (isinstance(registry_image, str) and _REGISTRY_IMAGE.match(registry_image)):
        problems.append(
            "app_image must name an image repository in a registry, host[:port]/path in lower case and without a"
            " tag (the release id is the tag), such as registry.example.com:5000/team/journal"
            f" (got {registry_image!r}); empty builds on the controller and loads the image into each host."
        )
    elif registry_image and image:
        problems.append(
            f"app_image ({registry_image!r}) and app_image_name ({image!r}) both name the release's image: set one."
        )
    dockerfile = app.get("app_dockerfile", "Dockerfile")
    if not (
        isinstance(dockerfile, str)
        and dockerfile
        and not dockerfile.startswith("/")
        and ".." not in dockerfile.split("/")
    ):
        problems.append(
            f"app_dockerfile must be a path inside the release's source, relative, without .. (got {dockerfile!r})."
        )
    commands = app.get("app_commands")
    if isinstance(commands, list):
        built = [str(item.get("name")) for item in commands if isinstance(item, Mapping) and item.get("run") == "build"]
        if built:
            problems.append(
                f"app_commands entries {', '.join(built)} run in the build (run: build), which under app_runtime"
                " compose is the image's: run them in the Dockerfile, or give them run: once or per_host."
            )
    return problems


class FilterModule:
    def filters(self):
        return {"compose_problems": compose_problems}
