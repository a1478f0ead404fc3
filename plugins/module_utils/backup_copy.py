# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Off-host copies of backups: what a destination holds and what it lacks (pure functions)."""

from __future__ import annotations


class CopyPlanError(ValueError):
    """Bad input, naming the line or backup at fault."""


def _hex(value) -> str:
    return str(value or "").strip().lower().removeprefix("sha256:")


def listing(text: str) -> dict:
    """Parse "<name> <sha256|missing> <size>" lines into {name: {"sha256", "size"}}; missing names are left out."""
    held = {}
    for line in str(text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        parts = line.rsplit(" ", 2)
        if len(parts) != 3:
            raise CopyPlanError(f"cannot read the line {line!r}")
        name, digest, size = parts
        if digest == "missing":
            continue
        try:
            held[name] = {"sha256": digest, "size": int(size)}
        except ValueError:
            raise CopyPlanError(f"bad size in the line {line!r}") from None
    return held


def plan(backups: list, held: dict, manifests: dict, app_name: str) -> list[dict]:
    """One entry per backup: copy_data / copy_manifest when that part must be (re)copied, and the problem found."""
    held = dict(held or {})
    manifests = dict(manifests or {})
    plan = []
    for entry in backups or []:
        for key in ("id", "file", "sha256", "size"):
            if entry.get(key) in (None, ""):
                raise CopyPlanError(f"manifest of backup {entry.get('id', '?')} has no {key}")
        manifest = f"{app_name}-{entry['id']}.json"
        if manifest not in manifests:
            raise CopyPlanError(f"no local sha256 for the manifest {manifest}")
        there = held.get(entry["file"])
        problem = ""
        if there is None:
            copy_data = True
        else:
            copy_data = _hex(there.get("sha256")) != _hex(entry["sha256"]) or int(there.get("size", -1)) != int(
                entry["size"]
            )
            if copy_data:
                problem = (
                    f"{entry['file']} there has sha256 {there.get('sha256')} and {there.get('size')} bytes; "
                    f"the manifest says sha256 {entry['sha256']} and {entry['size']} bytes"
                )
        there_manifest = held.get(manifest)
        copy_manifest = (
            copy_data
            or there_manifest is None
            or (_hex(there_manifest.get("sha256")) != _hex(manifests[manifest].get("sha256")))
        )
        plan.append(
            {
                "id": entry["id"],
                "file": entry["file"],
                "manifest": manifest,
                "sha256": _hex(entry["sha256"]),
                "size": int(entry["size"]),
                "copy_data": copy_data,
                "copy_manifest": copy_manifest,
                "problem": problem,
            }
        )
    return plan
