import sys

from livevace.cli import main

sys.exit(main())
