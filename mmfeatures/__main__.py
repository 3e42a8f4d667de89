import sys

from mmfeatures.cli import main

sys.exit(main())
