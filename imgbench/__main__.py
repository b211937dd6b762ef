"""`python -m imgbench` is the same as the `imgbench` console script."""

from imgbench.cli import main

raise SystemExit(main())
