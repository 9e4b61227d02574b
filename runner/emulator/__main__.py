"""``python -m runner.emulator``: the emulator without the rest of the command line."""

from runner.emulator.cli import main

raise SystemExit(main())
