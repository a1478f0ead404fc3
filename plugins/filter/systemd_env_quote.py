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
  dialect:
    description:
      - Who reads the file. V(systemd) (C(EnvironmentFile=), and sh) escapes C(\\), C("), C($) and C(`).
        V(compose) (a Compose v2 C(env_file), app_runtime compose) escapes C(\\), C(") and C($) only; Compose
        would keep the backslash before a C(`), and reads C(\\t), C(\\n) as escapes (hence C(\\) escaped).
    type: str
    choices: [systemd, compose]
    default: systemd
    version_added: 0.4.0
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


def systemd_env_quote(value, name=None, dialect="systemd") -> str:
    text = "" if value is None else str(value)
    if "\0" in text:
        raise AnsibleFilterError(
            f"systemd_env_quote: the value of {name or 'a variable'} holds a NUL character, "
            "which no environment variable can hold"
        )
    if dialect not in _SPECIAL:
        raise AnsibleFilterError(f"systemd_env_quote: dialect must be systemd or compose (got {dialect!r})")
    quoted = '"' + re.sub(_SPECIAL[dialect], r"\\\1", text) + '"'
    if name is None:
        return quoted
    if not _NAME.fullmatch(str(name)):
        raise AnsibleFilterError(
            f"systemd_env_quote: {name!r} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
        )
    return f"{name}={quoted}"


# The characters escaped with a backslash inside the double quotes: systemd (and sh) keep \\, ", $
# and ` after one; Compose's env_file parser keeps \\, " and $ (it interpolates ${...} otherwise)
# but leaves a backslash before ` in the value, so ` goes as it is there.
_SPECIAL = {"systemd": r'([\\"$`])', "compose": r'([\\"$])'}


class FilterModule:
    def filters(self):
        return {"systemd_env_quote": systemd_env_quote}
