"""The bundle's entry point: multiprocessing's frozen-child hook first (decoder processes are spawned), then the program (no arguments open the window; else a command)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a spawned decoder process runs its task here and exits
    from app.entry import main

    sys.exit(main())
