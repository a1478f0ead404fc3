#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: validate_run
short_description: Refuse unknown variables given with -e, and plays that would match no host
version_added: "0.1.0"
description:
  - An action that runs on the controller only (plugins/action/validate_run.py); the validate role
    runs it once, after mapping renamed groups onto the names the plays use.
  - Variables given with C(-e) whose names start with one of O(prefixes) must be declared by a
    role of the collection (its C(meta/argument_specs.yml) or C(defaults/main.yml)) or be listed
    in O(known_variables). Each unknown one is named with the closest known names (difflib), so
    C(-e rollback_confrim=journal) fails instead of being ignored.
  - Every play of the playbooks being run (the C(ansible-playbook) arguments, imported playbooks
    included) must match at least one host, with C(--limit) applied; a play that matches none
    would be skipped and the run would end ok. Plays whose C(hosts) is templated or names only
    O(runtime_groups) are decided during the run and not checked.
  - Every problem is listed in one failure.
author: opsbook engineers (@opsbook)
options:
  prefixes:
    description: Prefixes of the extra variables to check; others are left alone.
    type: list
    elements: str
    default: []
  known_variables:
    description: Names read by the playbooks themselves, known in addition to the roles' declared ones.
    type: list
    elements: str
    default: []
  runtime_groups:
    description: Groups created during the run (M(ansible.builtin.group_by)); plays on them only are not checked.
    type: list
    elements: str
    default: []
  playbooks:
    description: Playbook files whose plays are checked; default the ones C(ansible-playbook) was given.
    type: list
    elements: path
attributes:
  check_mode:
    support: full
    description: Reads only; the same in check mode.
notes:
  - Reads the extra variables from the play's variable manager and the plays' hosts from the
    inventory, which only an action plugin on the controller can see.
"""

EXAMPLES = r"""
- name: Variables given with -e are known, and every play has a host
  opsbook.webstack.validate_run:
    prefixes: [deploy_, rollback_, backup_, restore_]
    known_variables: [deploy_serial, rollback_release]
    runtime_groups: [opsbook_bg_target]
  run_once: true
"""

RETURN = r"""
unknown_variables:
  description: Extra variables with a checked prefix that nothing reads, each with the closest known names.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "rollback_confrim", "close": ["rollback_confirm"]}]
plays:
  description:
    - Each play of the run - C(name), C(hosts) (the pattern), C(file), and C(matched), the hosts
      it matches with C(--limit) applied (null when decided during the run).
  returned: always
  type: list
  elements: dict
  sample:
    - name: Install the release
      hosts: app:worker:scheduler
      file: /srv/opsbook/playbooks/deploy.yml
      matched: [app1, app2]
problems:
  description: Every problem found, one sentence each; the failure message joins them.
  returned: always
  type: list
  elements: str
  sample: ["Unknown variable 'deploy_reff' given with -e: did you mean 'deploy_ref'?"]
"""

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    # The action plugin's options, so the documentation and ansible-test see one interface.
    module = AnsibleModule(
        argument_spec={
            "prefixes": {"type": "list", "elements": "str", "default": []},
            "known_variables": {"type": "list", "elements": "str", "default": []},
            "runtime_groups": {"type": "list", "elements": "str", "default": []},
            "playbooks": {"type": "list", "elements": "path"},
        },
        supports_check_mode=True,
    )
    module.fail_json(
        msg="opsbook.webstack.validate_run runs on the controller as an action plugin; it has no remote part."
    )


if __name__ == "__main__":
    main()
