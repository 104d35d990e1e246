"""Development-only management commands: `dev_setup`, `run_emulator`."""
