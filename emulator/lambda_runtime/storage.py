"""An execution environment's ``/tmp``: its own, capped at the function's EphemeralStorage.

Lambda gives each execution environment 512 MB to 10,240 MB of ``/tmp``
(EphemeralStorage, default 512 MB); writes past it fail with ``ENOSPC``. It
belongs to one environment, survives warm invocations and is kept when the
environment is reset after a timeout or crash
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-ephemeral-storage.html,
https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html).

The directory is a sparse ext4 image loop-mounted on the host when this process
may mount (root, ``mkfs.ext4``): the kernel then enforces the cap exactly, and the
data is disk, not memory, as on Lambda (a tmpfs would charge its pages to the
function's memory). Otherwise it is a plain directory and :attr:`note` says the
cap is not enforced. The Docker backend bind-mounts it at ``/tmp``; the process
backend hands it to the runtime as ``TMPDIR`` (a host process cannot have its own
``/tmp`` without a mount namespace, which would also hide a venv under ``/tmp``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

_EXT4_OVERHEAD_MB = 16  # metadata of a small ext4: size the image so the usable space is the cap


class EphemeralStorage:
    """One environment's ``/tmp``; :meth:`close` unmounts and deletes it."""

    def __init__(self, size_mb: int, prefix: str = "lambdatwin-tmp-") -> None:
        self.size_mb = size_mb
        self._base = Path(tempfile.mkdtemp(prefix=prefix))
        self.path = self._base / "tmp"
        self.path.mkdir()
        self.capped = False
        self.note = ""
        reason = self._mount()
        if reason:
            self.note = f"/tmp cap of {size_mb} MB not enforced: {reason}"
        os.chmod(self.path, 0o1777)

    def _mount(self) -> str | None:
        if os.geteuid() != 0:
            return "mounting a capped filesystem needs root"
        if not (shutil.which("mkfs.ext4") and shutil.which("mount")):
            return "mkfs.ext4 or mount not found"
        image = self._base / "disk.img"
        overhead = max(_EXT4_OVERHEAD_MB, self.size_mb // 25)
        with open(image, "wb") as fh:
            fh.truncate((self.size_mb + overhead) * 1024 * 1024)
        for cmd in (["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", "-E", "lazy_itable_init=1,nodiscard", str(image)],
                    ["mount", "-o", "loop", str(image), str(self.path)]):
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                image.unlink(missing_ok=True)
                return f"{cmd[0]} failed: {(done.stderr or done.stdout).strip()[:200]}"
        self.capped = True
        return None

    def close(self) -> None:
        """Unmount (if mounted) and delete everything (idempotent)."""
        if self.capped:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=60)
            self.capped = False
        shutil.rmtree(self._base, ignore_errors=True)
