"""The design document's command line, forwarded to ``lpips-core``.

    python main.py --mode train    --data_dir data/mini_bapps --backbone alexnet --epochs 10 --output_dir runs/alex
    python main.py --mode evaluate --data_dir data/mini_bapps --model_path runs/alex/alex_lin.pth --output_dir eval
    python main.py --mode compare  --data_dir data/mini_bapps --output_dir compare
    python main.py --mode demo     --output_dir demo_results
    python main.py --mode analyze  --data_dir data/mini_bapps --output_dir analysis

Each line prints the ``lpips-core`` command it runs, then runs it (see
``lpips_core.design_api.main_argv`` and the book page "Coming from the design
document"); ``python -m lpips_core <command>`` or ``lpips-core <command>`` run
those commands directly.
"""

import sys

from lpips_core.design_api import main

if __name__ == "__main__":
    sys.exit(main())
