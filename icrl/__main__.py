import sys

from icrl.cli import main

sys.exit(main())
