"""Backups the team keeps itself, beside Neon's restore window: local ``pg_dump -Fc`` files with a manifest
each, Neon snapshots, retention, the proofs drills leave, and the schedule that takes them.

Small modules, each for one thing: ``errors`` (what can go wrong), ``atomic`` (writing a file whole or not at
all), ``manifest`` (what is written beside each file, and checking a file against it), ``backupdir`` (the
directory, its checks, names and listing), ``dump`` (taking a file backup), ``retention`` (``--keep``),
``proofs`` (what drills proved), ``listing`` (snapshots and files together), ``schedule`` (Neon's schedule,
cron and GitHub Actions).

Other parts call: :func:`manifest.verify_file` before any restore from a file, :func:`proofs.record_proof`
after a drill, :func:`backupdir.local_backups` and :func:`backupdir.latest_backup` to find files, :func:`listing.backups_before` for a moment
outside the restore window.
"""
