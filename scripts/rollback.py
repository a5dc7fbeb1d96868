#!/usr/bin/env python3
"""Roll the champion back to its previous champion (or to --to VERSION): the guard_champion DAG's code path.

    scripts/rollback.py --reason "bad feedback from the field"            # to previous_champion
    scripts/rollback.py --to 3 --reason "known good version"
    scripts/rollback.py --dry-run --reason "what would happen?"             # records, changes nothing

Idempotent (rolling back to the current champion does nothing); refuses a version that does not
exist or whose artifacts are missing; never leaves the registry without a champion. Every run is
appended to the audit trail (model_events); a real rollback sends one Slack message.
Exit codes: 0 done (or nothing to do), 4 unavailable, 5 refused.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--to", dest="version", help="version to make champion (default: previous_champion)")
    parser.add_argument("--reason", required=True, help="why: recorded in the audit trail and the Slack message")
    parser.add_argument("--dry-run", action="store_true", help="record what would happen, change nothing")
    parser.add_argument("--actor", default=None, help="who rolls back (default: your user name)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("urllib3", "botocore", "alembic", "mlflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from mlstack.registry.aliases import MissingArtifacts
    from mlstack.registry.connection import RegistryUnavailable
    from mlstack.rollout.actions import RollbackRefused, open_context, rollback

    try:
        ctx = open_context(actor=f"rollback.py:{args.actor or getpass.getuser()}")
        result = rollback(ctx, args.version, args.reason, dry_run=args.dry_run)
    except RegistryUnavailable as exc:
        print(f"unavailable: {exc}", file=sys.stderr)
        return 4
    except (RollbackRefused, MissingArtifacts) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 5
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
