import sys

from thermostat.cli import main

sys.exit(main())
