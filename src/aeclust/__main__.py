import sys

from .cli import main

# Guarded: the processes of 'aeclust run --seeds' start fresh and may import this module.
if __name__ == "__main__":
    sys.exit(main())
