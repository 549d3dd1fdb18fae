import sys

from mc_tasks.cli import main

sys.exit(main())
