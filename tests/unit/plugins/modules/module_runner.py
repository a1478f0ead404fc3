"""Run an opsbook.webstack module's main() in-process, as Ansible would, and read its JSON result."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
from dataclasses import dataclass
from typing import Any

from ansible.module_utils import _internal as module_internal
from ansible.module_utils.testing import patch_module_args


@dataclass
class ModuleResult:
    data: dict
    stdout: str
    exit_code: int | None

    @property
    def failed(self) -> bool:
        return bool(self.data.get("failed"))

    @property
    def changed(self) -> bool:
        return bool(self.data.get("changed"))

    @property
    def msg(self) -> str:
        return str(self.data.get("msg", ""))

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


def run_module(name: str, args: dict, *, check_mode: bool = False, isolated: bool = False) -> ModuleResult:
    """Call opsbook.webstack.<name>'s main() with args; what it prints is what Ansible would receive.

    isolated: in a forked child, for a module that changes its process (drops privileges)."""
    if isolated:
        return _run_forked(name, args, check_mode)
    module = importlib.import_module(f"ansible_collections.opsbook.webstack.plugins.modules.{name}")
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    buffer = io.StringIO()
    code: int | None = None
    # Once anything imports Ansible's controller code (a filter plugin test does), module
    # warnings go to the controller's display instead of the result; on a host they never do.
    was_controller = module_internal.is_controller
    module_internal.is_controller = False
    try:
        with patch_module_args(args), contextlib.redirect_stdout(buffer):
            try:
                module.main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else None
    finally:
        module_internal.is_controller = was_controller
    out = buffer.getvalue()
    try:
        data = json.loads(out)
    except ValueError:
        raise AssertionError(f"{name} printed no JSON result:\n{out}") from None
    return ModuleResult(data, out, code)


def _run_forked(name: str, args: dict, check_mode: bool) -> ModuleResult:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run, send the result, never return into pytest
        os.close(read_fd)
        try:
            result = run_module(name, args, check_mode=check_mode)
            payload = json.dumps({"data": result.data, "stdout": result.stdout, "exit_code": result.exit_code})
        except BaseException as exc:  # noqa: BLE001 - reported to the parent as the test's failure
            payload = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
        with os.fdopen(write_fd, "w") as pipe:
            pipe.write(payload)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        payload = json.loads(pipe.read() or '{"error": "the child sent nothing"}')
    os.waitpid(pid, 0)
    if "error" in payload:
        raise AssertionError(f"{name} in a child process: {payload['error']}")
    return ModuleResult(payload["data"], payload["stdout"], payload["exit_code"])
