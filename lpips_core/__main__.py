"""``python -m lpips_core`` is the same as ``lpips-core``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
