"""``python -m gluonres`` runs the command line."""
import sys

from gluonres.cli import main


sys.exit(main())
