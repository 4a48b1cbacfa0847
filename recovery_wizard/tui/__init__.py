"""The Textual wizard: the runbook as a calm, keyboard-first guide.

It drives the same plan and step objects as the headless `restore` (``recovery_wizard.recovery``): the
screens collect choices and show progress; :mod:`adapters` turns the runbook's prompts into modals and its
reports into what the current screen shows. Imported only when the wizard opens (Textual is not cheap).
"""
