"""`python -m courier`: see `courier.process.entrypoint`."""

from courier.process.entrypoint import main

raise SystemExit(main())
