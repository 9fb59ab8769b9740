"""``python -m video_interpreter.cli``: the same as the ``video-interpreter`` command."""

import sys

from ._main import main

sys.exit(main())
