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
notes:
  - The connection options are shared by every module of the collection that connects to PostgreSQL
    (M(opsbook.webstack.pg_dump_verify), M(opsbook.webstack.pg_backup_dump)).
"""
