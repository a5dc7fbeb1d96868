"""Native mode commands: `python -m mlstack.native up | down | status | logs | ab-weight | restart`."""

from mlstack.deployment import main

if __name__ == "__main__":
    raise SystemExit(main("native"))
