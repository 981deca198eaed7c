"""`python -m crypto_assets.cli`: the ``crypto-assets`` console script."""

import sys

from crypto_assets.cli import main

sys.exit(main())
