"""Compose mode commands: `python -m mlstack.compose up | down [--volumes] | build | status | logs | ab-weight`."""

from mlstack.deployment import main

if __name__ == "__main__":
    raise SystemExit(main("compose"))
