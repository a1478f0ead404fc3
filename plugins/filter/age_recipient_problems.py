# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The age_recipient_problems filter: which age recipients are malformed, named by position only."""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.opsbook.webstack.plugins.module_utils.age_crypt import RECIPIENT

DOCUMENTATION = r"""
name: age_recipient_problems
short_description: Which age recipients are malformed, named by their position, never by their value
version_added: 0.2.0
description:
  - A pure function, run by the backup role before anything changes.
  - Each entry must be an age public key (C(age1) and 58 bech32 characters, as C(age-keygen) prints
    after C(Public key:)); a bad one is named by its position (C(backup_encrypt_recipients[1])), so a
    private key pasted there never reaches the output.
  - The value must be a list, and no recipient may be listed twice.
options:
  _input:
    description: The recipients.
    type: raw
    required: true
  name:
    description: The variable that sets the recipients, named in the messages.
    type: str
    default: backup_encrypt_recipients
"""

EXAMPLES = r"""
- name: Refuse malformed recipients before anything changes
  ansible.builtin.assert:
    that: __problems | length == 0
    fail_msg: "{{ __problems | join('; ') }}"
  vars:
    __problems: "{{ backup_encrypt_recipients | opsbook.webstack.age_recipient_problems }}"
"""

RETURN = r"""
_value:
  description: One message per problem (malformed entries, a recipient listed twice); empty when the list is right.
  type: list
  elements: str
"""


def age_recipient_problems(recipients, name="backup_encrypt_recipients") -> list[str]:
    if isinstance(recipients, (str, Mapping)) or not hasattr(recipients, "__getitem__") or recipients is None:
        bad = [f"{name} itself (a list is expected)"]
        recipients = []
    else:
        recipients = list(recipients)
        bad = [f"{name}[{index}]" for index, value in enumerate(recipients) if not RECIPIENT.match(str(value))]
    problems = []
    if bad:
        problems.append(
            f"{name} must be a list of age public keys ('age1' and 58 bech32 characters, as age-keygen prints"
            f" after 'Public key:'); not one: {', '.join(bad)}"
        )
    if any(value in recipients[:index] for index, value in enumerate(recipients)):
        problems.append(f"{name} lists a recipient twice")
    return problems


class FilterModule:
    def filters(self):
        return {"age_recipient_problems": age_recipient_problems}
