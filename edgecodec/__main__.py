import sys

from edgecodec.cli import main

sys.exit(main())
