"""Compose mode commands: `python -m mlstack.compose up | down | status | logs | ab-weight`."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from mlstack.settings import StackSettings, load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlstack.compose", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="build the images, start every service, wait until healthy")
    down = sub.add_parser("down", help="stop and remove the containers (the data volumes stay)")
    down.add_argument("--volumes", action="store_true", help="also delete the data volumes (everything is lost)")
    sub.add_parser("build", help="build every image (the layer cache makes a second build quick)")
    sub.add_parser("status", help="show each service's state and health (exit 1 if any is unhealthy)")
    logs = sub.add_parser("logs", help="show service logs")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("-n", "--lines", type=int, default=50)
    logs.add_argument("services", nargs="*")
    weight = sub.add_parser("ab-weight", help="set the percent of users sent to slot B (0 turns B off)")
    weight.add_argument("percent", type=int)
    args = parser.parse_args(argv)
    console = Console()

    from mlstack.compose.stack import ComposeStack
    from mlstack.deployment import StackError

    try:
        stack = ComposeStack(load(StackSettings), console)
        if args.command == "up":
            stack.up()
        elif args.command == "down":
            stack.down(volumes=args.volumes)
        elif args.command == "build":
            console.print(f"images built in {stack.build():.0f}s")
        elif args.command == "status":
            return 0 if stack.status() else 1
        elif args.command == "logs":
            return stack.logs(args.follow, args.lines, args.services)
        elif args.command == "ab-weight":
            stack.set_ab_weight(args.percent)
        return 0
    except ValidationError as exc:
        console.print(f"[red]configuration error[/red] (check .env; see .env.example):\n{escape(str(exc))}")
        return 2
    except StackError as exc:
        console.print(f"[red]error[/red]: {escape(str(exc))}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
