from mlstack.cli import main

raise SystemExit(main())
