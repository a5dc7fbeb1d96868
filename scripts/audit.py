#!/usr/bin/env python3
"""Audit the locked dependencies for known vulnerabilities (pip-audit), against a documented allow-list.

    scripts/audit.py                 # make audit; make test runs it too
    scripts/audit.py --strict        # also fail when the vulnerability service cannot be reached

Every package pinned in requirements/lock.txt is checked (`pip-audit --no-deps -r`, OSV first, then
PyPI's JSON API). A vulnerability fails the audit unless requirements/audit-allowlist.yaml lists
its id with a reason and an expiry date; an expired entry fails too, so every exception is looked
at again. Without network access to a vulnerability service the audit cannot say anything: it
prints NOT AUDITED and exits 0 (1 with --strict), never "clean".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ALLOWLIST = ROOT / "requirements" / "audit-allowlist.yaml"
SERVICES = ("osv", "pypi")


@dataclass(frozen=True)
class Allowed:
    id: str
    package: str
    reason: str
    expires: date


def load_allowlist(path: Path) -> list[Allowed]:
    """Parse the allow-list; every entry needs id, package, reason and an expiry date."""
    entries = yaml.safe_load(path.read_text()) or []
    out = []
    for n, entry in enumerate(entries, 1):
        missing = [k for k in ("id", "package", "reason", "expires") if not entry.get(k)]
        if missing:
            raise ValueError(f"{path.name} entry {n}: missing {', '.join(missing)}")
        expires = entry["expires"] if isinstance(entry["expires"], date) else date.fromisoformat(str(entry["expires"]))
        out.append(Allowed(str(entry["id"]), str(entry["package"]).lower(), str(entry["reason"]), expires))
    return out


def verdict(report: dict, allowed: list[Allowed], today: date) -> tuple[list[str], list[str], int, int]:
    """(failures, notes, audited packages, skipped packages) for a pip-audit JSON report."""
    by_id = {a.id: a for a in allowed}
    failures, notes = [], []
    audited = skipped = 0
    for dep in report.get("dependencies", []):
        if dep.get("skip_reason"):
            skipped += 1
            continue
        audited += 1
        for vuln in dep.get("vulns", []):
            ids = [vuln["id"], *vuln.get("aliases", [])]
            entry = next((by_id[i] for i in ids if i in by_id), None)
            fix = ", ".join(vuln.get("fix_versions", [])) or "no fixed release"
            if entry is None:
                failures.append(f"{dep['name']} {dep['version']}: {vuln['id']} (fixed in {fix})")
            elif entry.expires < today:
                failures.append(f"{dep['name']} {dep['version']}: {vuln['id']} allowed until {entry.expires}, "
                                f"expired — look again ({entry.reason})")
            else:
                notes.append(f"{dep['name']} {dep['version']}: {vuln['id']} allowed until {entry.expires}: "
                             f"{entry.reason}")
    for a in allowed:
        if a.expires < today:
            failures.append(f"allow-list entry {a.id} ({a.package}) expired on {a.expires}")
    return failures, notes, audited, skipped


def run_pip_audit(service: str, lock: Path) -> dict | None:
    cmd = [sys.executable, "-m", "pip_audit", "-r", str(lock), "--no-deps", "--disable-pip", "-f", "json",
           "-s", service, "--progress-spinner", "off", "--timeout", "20"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        print(f"audit: {service}: {(proc.stderr.strip().splitlines() or ['no output'])[-1][:200]}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements" / "lock.txt")
    parser.add_argument("--allowlist", type=Path, default=ALLOWLIST)
    parser.add_argument("--strict", action="store_true", help="fail when no vulnerability service answers")
    args = parser.parse_args(argv)

    allowed = load_allowlist(args.allowlist)
    for service in SERVICES:
        report = run_pip_audit(service, args.lock)
        if report is None:
            continue
        failures, notes, audited, skipped = verdict(report, allowed, date.today())
        if audited == 0:
            print(f"audit: {service} could not look up any of {skipped} packages", file=sys.stderr)
            continue
        for line in notes:
            print(f"audit: allowed: {line}")
        for line in failures:
            print(f"audit: VULNERABLE: {line}")
        print(f"audit: {audited} packages checked against {service} ({skipped} not found there), "
              f"{len(failures)} failing, {len(notes)} allowed")
        return 1 if failures else 0
    expired = [f for f in verdict({}, allowed, date.today())[0]]
    for line in expired:
        print(f"audit: {line}")
    print("audit: NOT AUDITED — no vulnerability service reachable (OSV at api.osv.dev, PyPI's JSON API); "
          "run `make audit` where one is", file=sys.stderr)
    return 1 if (args.strict or expired) else 0


if __name__ == "__main__":
    sys.exit(main())
