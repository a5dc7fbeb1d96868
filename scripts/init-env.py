#!/usr/bin/env python3
"""Create .env from .env.example, generating every variable marked "(secret)" that is empty.

Idempotent: an existing .env keeps its values; secrets still empty in it are filled, and
variables added to .env.example since are appended. Says what it did; never prints a secret.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
from pathlib import Path

LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


def parse(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        m = LINE.match(line)
        if m:
            values[m.group(1)] = m.group(2)
    return values


def secret_names(example: Path) -> set[str]:
    """Return variables whose preceding comment line says "(secret)"."""
    names, previous = set(), ""
    for line in example.read_text().splitlines():
        m = LINE.match(line)
        if m and "(secret)" in previous:
            names.add(m.group(1))
        previous = line
    return names


def generate(name: str) -> str:
    # Access key ids are conventionally upper-case alphanumerics; the rest are URL-safe tokens.
    if name.endswith("ACCESS_KEY_ID"):
        return "MLSTACK" + secrets.token_hex(8).upper()
    if name.endswith("JWT_SECRET"):  # Airflow wants at least 64 bytes
        return secrets.token_urlsafe(64)
    return secrets.token_urlsafe(32)


def init_env(example: Path, target: Path) -> list[str]:
    """Write `target`; return the names of the variables generated or added."""
    wanted = secret_names(example)
    existing = parse(target) if target.exists() else {}
    changed: list[str] = []
    out: list[str] = []
    for line in example.read_text().splitlines():
        m = LINE.match(line)
        if not m:
            out.append(line)
            continue
        name, default = m.group(1), m.group(2)
        value = existing.get(name, default)
        if name in wanted and not value:
            value = generate(name)
            changed.append(name)
        elif name not in existing and target.exists():
            changed.append(name)
        out.append(f"{name}={value}")
    extra = [f"{k}={v}" for k, v in existing.items() if k not in parse(example)]
    if extra:
        out += ["", "# --- Local additions (not in .env.example) ---", *extra]
    if changed or not target.exists():
        target.write_text("\n".join(out) + "\n")
        target.chmod(0o600)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--example", type=Path, default=Path(".env.example"))
    parser.add_argument("--env", type=Path, default=Path(".env"))
    args = parser.parse_args(argv)
    existed = args.env.exists()
    changed = init_env(args.example, args.env)
    if not existed:
        print(f"init-env: created {args.env} from {args.example}; generated {len(changed)} secret(s): "
              + ", ".join(changed))
    elif changed:
        print(f"init-env: updated {args.env}: " + ", ".join(changed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
