"""A backup file's bytes as one stream, decompressed on the fly: never read whole.

gzip is the standard library's. zstd is the ``zstd`` program's (``zstd -dc``), not a new Python
dependency: every system that makes ``.sql.zst`` files has it, and a pipe streams as well as a library would.
"""

from __future__ import annotations

import contextlib
import gzip
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Final

GZIP_MAGIC: Final = b"\x1f\x8b"
ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"


def compression_of(head: bytes) -> str | None:
    """``"gzip"``, ``"zstd"`` or None, from a file's first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


def zstd_program() -> str | None:
    return shutil.which("zstd")


@contextlib.contextmanager
def open_decompressed(path: Path, compression: str | None) -> Iterator[IO[bytes]]:
    """The file's content as a binary stream; a zstd child is stopped when the block ends, read or not."""
    if compression is None:
        with open(path, "rb") as raw:
            yield raw
    elif compression == "gzip":
        with gzip.open(path, "rb") as unzipped:
            yield unzipped  # type: ignore[misc]  # a GzipFile is a binary stream
    elif compression == "zstd":
        program = zstd_program()
        if program is None:
            from recovery_wizard.recovery.files.detect import BackupFileError

            raise BackupFileError(
                f"{path} is compressed with zstd, and no `zstd` program was found to read it.",
                hint="Install zstd (apt install zstd, brew install zstd), or decompress the file yourself "
                "(`zstd -d FILE`) and give the .sql.",
            )
        proc = subprocess.Popen(
            [program, "-dc", "--no-progress", "-q", "--", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        try:
            yield proc.stdout
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    else:
        raise ValueError(f"unknown compression {compression!r}")


def read_prefix(path: Path, compression: str | None, limit: int) -> bytes:
    """At most ``limit`` bytes of the decompressed content (a damaged stream gives what came before it)."""
    chunks: list[bytes] = []
    got = 0
    with contextlib.suppress(OSError, EOFError), open_decompressed(path, compression) as stream:
        while got < limit:
            chunk = stream.read(limit - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    return b"".join(chunks)
