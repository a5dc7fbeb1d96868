#!/usr/bin/env python3
"""Send simulated users through nginx: held-out rows, stable user ids, true values as feedback later.

    scripts/simulate.py --seconds 60 --rate 20                      # healthy traffic
    scripts/simulate.py --scenario bad-challenger --seconds 120     # slot B: 5% errors, biased prices
    scripts/simulate.py --scenario degraded-champion                 # slot A: biased prices
    scripts/simulate.py --scenario drift                              # shifted inputs
    scripts/simulate.py --scenario slot-outage                        # slot B stopped (native mode)

Needs the native stack (make up). Fault modes are undone when the run ends. Prints progress and a
JSON summary (requests per variant and version, statuses, feedback sent).
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    from mlstack.simulator import SCENARIOS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=SCENARIOS, default="healthy")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second, all users together")
    parser.add_argument("--users", type=int, default=500, help="distinct simulated users (sticky A/B)")
    parser.add_argument("--label-fraction", type=float, default=1.0, help="share of predictions that get feedback")
    parser.add_argument("--feedback-delay", type=float, default=1.0, help="seconds before the true value is posted")
    parser.add_argument("--bias", type=float, default=60_000.0, help="price bias (USD) of the faulty slot")
    parser.add_argument("--error-rate", type=float, default=0.05, help="error ratio of the faulty slot")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from mlstack.contracts import get_contract
    from mlstack.native.stack import Stack
    from mlstack.serving.faults import write_fault
    from mlstack.settings import StackSettings, TrainingSettings, load
    from mlstack.simulator import Simulator, drifted, holdout_rows

    training = load(TrainingSettings)
    stack = Stack(load(StackSettings))
    contract = get_contract(training.DATA_CONTRACT)
    rows = holdout_rows(training.DATA_PATH, contract, training.SPLIT_SEED, training.HOLDOUT_FRACTION)
    if args.scenario == "drift":
        rows = drifted(rows, contract)
    faults = {"bad-challenger": ("B", {"error_rate": args.error_rate, "bias": args.bias}),
              "degraded-champion": ("A", {"bias": args.bias})}
    undo = []
    if args.scenario in faults:
        slot, fault = faults[args.scenario]
        write_fault(stack.fault_file(slot), **fault)
        undo.append(lambda: write_fault(stack.fault_file(slot)))
        print(f"slot {slot} in fault mode {fault}", flush=True)
    if args.scenario == "slot-outage":
        stack.ctl("stop", "backend-b")
        undo.append(lambda: stack.ctl("start", "backend-b"))
        print("slot B stopped", flush=True)
    sim = Simulator(stack.settings.WEB_PORT, rows, contract, rate=args.rate, users=args.users,
                    label_fraction=args.label_fraction, feedback_delay=args.feedback_delay, seed=args.seed)
    print(f"{args.scenario}: {args.rate:g} requests/s for {args.seconds:g} s through "
          f"http://127.0.0.1:{stack.settings.WEB_PORT}/api ({len(rows):,} held-out rows, {args.users} users)", flush=True)

    def progress(r) -> None:  # noqa: ANN001
        print(f"  {r.sent:6d} sent  {dict(r.variants)}  statuses {dict(r.answered)}  feedback {r.feedback_sent}",
              flush=True)

    try:
        report = sim.run(args.seconds, progress)
    finally:
        for fn in undo:
            fn()
    print(json.dumps(report.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
