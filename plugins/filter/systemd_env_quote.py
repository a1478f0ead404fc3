# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The systemd_env_quote filter: a value for a systemd EnvironmentFile= line, double-quoted."""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: systemd_env_quote
short_description: Quote a value for a systemd EnvironmentFile (and POSIX sh) line
version_added: 0.2.0
description:
  - Returns the value double-quoted, with C(\\), C(") and, so that a shell reading the file gets
    the same value, C($) and C(`) preceded by a backslash. systemd.exec(5), C(EnvironmentFile=),
    keeps those four after a backslash and everything else inside double quotes verbatim,
    including leading and trailing spaces and newlines (a value may span lines).
  - Without quotes a value loses its leading and trailing whitespace and its backslashes; with
    unescaped ones a C(") ends it early and a newline starts a new variable
    (C(PASSWORD="x<newline>LD_PRELOAD=/tmp/evil.so")).
  - A NUL character cannot be in an environment variable and fails the filter. With O(name),
    returns the whole C(NAME="value") line and checks that NAME is a variable name
    (C([A-Za-z_][A-Za-z0-9_]*)), which systemd would otherwise skip with only a log line.
options:
  _input:
    description: The value.
    type: raw
    required: true
  name:
    description: Variable name; when given, the result is C(name="value").
    type: str
"""

EXAMPLES = r"""
- name: The app's environment file
  ansible.builtin.copy:
    content: |
      DATABASE_PASSWORD={{ app_db_password | opsbook.webstack.systemd_env_quote }}
      {{ 'EXTRA' | opsbook.webstack.systemd_env_quote(name='EXTRA') }}
    dest: /srv/journal/shared/env
    mode: "0600"
# a"b\c$d -> "a\"b\\c\$d"
"""

RETURN = r"""
_value:
  description: The quoted value, or the C(NAME="value") line with O(name).
  type: str
  sample: '"a\"b\\c\$d"'
"""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def systemd_env_quote(value, name=None) -> str:
    text = "" if value is None else str(value)
    if "\0" in text:
        raise AnsibleFilterError(
            f"systemd_env_quote: the value of {name or 'a variable'} holds a NUL character, "
            "which no environment variable can hold"
        )
    quoted = '"' + re.sub(r'([\\"$`])', r"\\\1", text) + '"'
    if name is None:
        return quoted
    if not _NAME.fullmatch(str(name)):
        raise AnsibleFilterError(
            f"systemd_env_quote: {name!r} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
        )
    return f"{name}={quoted}"


class FilterModule:
    def filters(self):
        return {"systemd_env_quote": systemd_env_quote}
