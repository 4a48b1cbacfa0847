"""The recovery runbook as UI-free code: time points, plan and pre-flight, restore, verify, .env, Prisma,
journal and incident record. Driven by the headless CLI and by the TUI; never imports either, nor Textual.
"""
