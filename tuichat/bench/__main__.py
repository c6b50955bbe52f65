import sys

from tuichat.bench.cli import main

sys.exit(main())
