import sys

from sharens.cli import main

sys.exit(main())
