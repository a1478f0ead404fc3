#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: backup_encrypt
short_description: Encrypt an app's verified backups with age for the copies that leave the db host
version_added: "0.2.0"
description:
  - For every backup in O(backups) (published manifests, as
    M(opsbook.webstack.backup_retention) returns them in RV(opsbook.webstack.backup_retention#module:kept)),
    writes into O(dest) each of its files (dump, media and configuration archives) encrypted
    with C(age) to O(recipients) as C(<file>.age), then a manifest of the same name as the
    local one (C(<app>-<id>.json)) whose C(file), C(files), C(sha256) and C(size) describe the
    ciphertext, with the plaintext's names, sha256 and sizes under C(encryption.plaintext) and
    the recipients under C(encryption.recipients). The off-host copies are made from
    O(dest), so they are checked on the store and in S3 against the ciphertext's sha256.
  - Only public keys are used here; the identity (private key) that decrypts is never on the
    host this runs on.
  - The plaintext is hashed while it is encrypted and must equal its manifest's sha256 (the
    file that was verified), or nothing is written for that backup and the module fails.
  - A backup whose encrypted files are there, to the same recipients, of the same plaintext,
    is left alone (a second run changes nothing); changing O(recipients) encrypts every
    backup again (and the copies are then replaced, their sha256 having changed).
  - Encrypted files of backups no longer in O(backups) (rotated away) are removed, manifest
    first.
author: opsbook engineers (@opsbook)
extends_documentation_fragment:
  - opsbook.webstack.backup_dir
options:
  app:
    description: The app whose backups are encrypted; the manifests are C(<app>-<id>.json).
    type: str
    required: true
  backups:
    description: The manifests of the backups to encrypt (each with C(id), C(file), C(sha256), C(size), C(files)).
    type: list
    elements: dict
    required: true
  recipients:
    description: age recipients (public keys, C(age1...)) every file is encrypted to.
    type: list
    elements: str
    required: true
  dest:
    description: Directory of the encrypted files (created 0700); C(<path>/encrypted) when not set.
    type: path
  age:
    description: The age binary.
    type: str
    default: age
attributes:
  check_mode:
    support: full
    description: Reports which backups would be encrypted and which removed; writes nothing.
seealso:
  - module: opsbook.webstack.backup_retention
  - name: age
    description: The age file encryption tool and format.
    link: https://age-encryption.org/v1
"""

EXAMPLES = r"""
- name: Encrypt the backups to copy
  opsbook.webstack.backup_encrypt:
    path: /var/backups/opsbook/journal
    app: journal
    backups: "{{ retention.kept | selectattr('verified') | list }}"
    recipients:
      - age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
  register: encrypted
"""

RETURN = r"""
path:
  description: The directory of the encrypted files (O(dest)).
  returned: always
  type: str
  sample: /var/backups/opsbook/journal/encrypted
backups:
  description:
    - The manifests of the encrypted copies, in the order of O(backups). In check mode, a
      backup not encrypted yet has C(sha256) C(pending) and C(size) -1.
  returned: always
  type: list
  elements: dict
encrypted:
  description: Ids encrypted by this run (in check mode, that would be).
  returned: always
  type: list
  elements: str
  sample: ["20261206T030000Z"]
pruned:
  description: Ids whose encrypted files were removed (no longer in O(backups)).
  returned: always
  type: list
  elements: str
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsbook.webstack.plugins.module_utils.age_crypt import (
    EncryptError,
    check_recipients,
    encrypt_backup,
    prune,
    view_is_current,
)
from ansible_collections.opsbook.webstack.plugins.module_utils.retention_apply import RetentionApplyError, read_backups


def _pending(source: dict) -> dict:
    view = json.loads(json.dumps(source))
    for part in [view] + list((view.get("files") or {}).values()):
        part.update({"file": str(part.get("file")) + ".age", "sha256": "pending", "size": -1})
    return view


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            app=dict(type="str", required=True),
            backups=dict(type="list", elements="dict", required=True),
            recipients=dict(type="list", elements="str", required=True, no_log=False),
            dest=dict(type="path"),
            age=dict(type="str", default="age"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    problems = check_recipients(p["recipients"])
    if not p["recipients"]:
        problems.append("backup_encrypt_recipients is empty: there is nobody to encrypt to")
    if problems:
        module.fail_json(msg="; ".join(problems) + ". Nothing was encrypted.")
    dest = p["dest"] or os.path.join(p["path"], "encrypted")
    age = module.get_bin_path(p["age"]) if not os.path.isabs(p["age"]) else p["age"]
    if not age:
        module.fail_json(msg=f"{p['age']} is not on this host (Debian: apt install age). Nothing was encrypted.")
    try:
        views = read_backups(dest, p["app"])
    except RetentionApplyError as exc:
        module.fail_json(msg=str(exc))
    out, encrypted = [], []
    if not module.check_mode and not os.path.isdir(dest):
        os.makedirs(dest, mode=0o700)
    for source in p["backups"]:
        view = views.get(str(source.get("id")))
        if view_is_current(source, view, p["recipients"], dest):
            out.append(view)
            continue
        encrypted.append(str(source.get("id")))
        if module.check_mode:
            out.append(_pending(source))
            continue
        try:
            out.append(encrypt_backup(p["path"], dest, p["app"], source, p["recipients"], age))
        except (EncryptError, OSError) as exc:
            module.fail_json(msg=f"Encrypting backup {source.get('id')}: {exc}", encrypted=encrypted[:-1], path=dest)
    keep = {str(b.get("id")) for b in p["backups"]}
    pruned = prune(dest, p["app"], keep, views, module.check_mode) if os.path.isdir(dest) else []
    module.exit_json(changed=bool(encrypted or pruned), path=dest, backups=out, encrypted=encrypted, pruned=pruned)


if __name__ == "__main__":
    main()
