# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The connection options of the PostgreSQL modules (module_utils/postgres.py: postgres_common_argument_spec)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host of the PostgreSQL server, or the directory of its Unix socket. Empty means O(login_unix_socket),
        or libpq's default socket when that is empty too.
    type: str
    default: ""
    aliases: [host]
  login_port:
    description:
      - Port of the server (for a socket, the number in its file name C(.s.PGSQL.<port>)).
    type: int
    default: 5432
    aliases: [port]
  login_user:
    description:
      - Role to connect as. Empty means the operating-system user the module runs as.
    type: str
    default: postgres
    aliases: [login]
  login_password:
    description:
      - Password of O(login_user). It reaches the client tools through their environment (C(PGPASSWORD)) or a
        temporary C(0600) passfile (C(PGPASSFILE)); it never appears on a command line or in the result, and
        it is masked in the tools' messages.
    type: str
    default: ""
  login_unix_socket:
    description:
      - Directory of the server's Unix socket, used when O(login_host) is empty.
    type: str
    default: ""
  pg_bin_dir:
    description:
      - Directory holding the PostgreSQL client tools (C(pg_dump), C(pg_restore), C(psql)).
      - Without it, the newest C(/usr/lib/postgresql/*/bin) or C(/usr/pgsql-*/bin), then the PATH. The tools
        must be at least as new as the server (C(pg_dump)) or the pg_dump that wrote the archive (C(pg_restore)).
    type: path
    aliases: [bin_dir]
  container:
    description:
      - Name or id of a running container, on the host that runs the module, whose PostgreSQL to use (the database
        as a service of a compose project). C(pg_dump), C(pg_restore) and C(psql) then run inside it, as
        C(docker exec --interactive --user postgres <container> ...) with the archive streamed between the
        host's file and their stdin or stdout; O(pg_bin_dir) is then a directory inside the container, and the
        login options are as the tools see them there (by default the local socket, where C(postgres) logs in
        by peer authentication, no password). The host needs the docker CLI, not the client tools or psycopg.
      - The libpq variables, the password among them, are passed by name (C(--env PGPASSWORD)), their values in
        the docker CLI's environment, never on a command line.
      - A streamed archive is read in one pass by one process, so C(pg_restore --jobs) does not apply, and the
        directory format (a directory inside the container) is refused.
    type: str
    default: ""
    version_added: 0.4.0
notes:
  - The connection options are shared by every module of the collection that connects to PostgreSQL
    (M(opsbook.webstack.pg_dump_verify), M(opsbook.webstack.pg_backup_dump)).
"""
