"""Plain-terminal UI for the headless commands: questionary prompts and a stderr progress reporter.

No Textual here: `recovery-wizard restore` must run on any terminal, in CI and over SSH.
"""
