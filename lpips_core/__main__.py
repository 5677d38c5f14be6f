"""``python -m lpips_core`` is the same as ``lpips-core``."""
import sys

from .cli import main

sys.exit(main())
