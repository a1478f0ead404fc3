# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Off-host copies of backups: what a destination holds and what it lacks (pure functions)."""

from __future__ import annotations

from ansible_collections.opsbook.webstack.plugins.module_utils.retention import UnsafeNameError, check_name, data_files

__all__ = ["CopyPlanError", "data_files", "listing", "plan"]

# Where the names in a manifest must stay: plain names in the backup directory (local, on the
# store, under the S3 prefix), checked as the local rotation checks them (retention.check_name).
WHERE = "the backup directory"


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


def _parts(entry: dict, manifest: str) -> list[dict]:
    """The files of one backup: its dump, then the archives its manifest lists (media, config)."""
    try:
        data_files(entry, WHERE)
    except UnsafeNameError as exc:
        raise CopyPlanError(str(exc)) from None
    parts = [{"file": entry["file"], "sha256": _hex(entry["sha256"]), "size": int(entry["size"]), "manifest": manifest}]
    for name, extra in sorted((entry.get("files") or {}).items()):
        for key in ("file", "sha256", "size"):
            if not isinstance(extra, dict) or extra.get(key) in (None, ""):
                raise CopyPlanError(f"manifest of backup {entry['id']} lists the file {name} without {key}")
        parts.append(
            {"file": extra["file"], "sha256": _hex(extra["sha256"]), "size": int(extra["size"]), "manifest": manifest}
        )
    return parts


def plan(backups: list, held: dict, manifests: dict, app_name: str) -> list[dict]:
    """One entry per backup: which of its files (dump, archives) and whether its manifest must be (re)copied.

    held: what the destination holds, name -> {"sha256", "size"}; manifests: the local
    manifests' own sha256 (name -> {"sha256"}); a manifest not in it is always copied.
    """
    held = dict(held or {})
    manifests = dict(manifests or {})
    out = []
    for entry in backups or []:
        for key in ("id", "file", "sha256", "size"):
            if entry.get(key) in (None, ""):
                raise CopyPlanError(f"manifest of backup {entry.get('id', '?')} has no {key}")
        try:
            manifest = check_name(f"{app_name}-{entry['id']}.json", entry["id"], WHERE)
        except UnsafeNameError as exc:
            raise CopyPlanError(str(exc)) from None
        parts = _parts(entry, manifest)
        copy_parts, problems = [], []
        for part in parts:
            there = held.get(part["file"])
            if there is None:
                copy_parts.append(part["file"])
            elif _hex(there.get("sha256")) != part["sha256"] or int(there.get("size", -1)) != part["size"]:
                copy_parts.append(part["file"])
                problems.append(
                    f"{part['file']} there has sha256 {there.get('sha256')} and {there.get('size')} bytes; "
                    f"the manifest says sha256 {part['sha256']} and {part['size']} bytes"
                )
        there_manifest = held.get(manifest)
        local_manifest = manifests.get(manifest)
        copy_manifest = (
            bool(copy_parts)
            or there_manifest is None
            or local_manifest is None
            or _hex(there_manifest.get("sha256")) != _hex(local_manifest.get("sha256"))
        )
        out.append(
            {
                "id": entry["id"],
                "file": entry["file"],
                "manifest": manifest,
                "sha256": _hex(entry["sha256"]),
                "size": int(entry["size"]),
                "parts": parts,
                "copy_parts": copy_parts,
                "copy_data": bool(copy_parts),
                "copy_manifest": copy_manifest,
                "problem": "; ".join(problems),
            }
        )
    return out
