import sys

from tuichat.server.cli import main

sys.exit(main())
