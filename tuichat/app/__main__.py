import sys

from tuichat.app.cli import main

sys.exit(main())
