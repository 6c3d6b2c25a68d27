"""`python -m courier`: see `courier.entrypoint`."""

from courier.entrypoint import main

raise SystemExit(main())
