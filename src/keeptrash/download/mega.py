"""AVA's 7z volumes from a public MEGA folder, fetched with megatools' `megadl` (MEGA's protocol is not
re-implemented here), then extracted like any local archive."""

import shutil
import subprocess
from pathlib import Path

from keeptrash.errors import KeeptrashError

INSTALL_HINT = "install megatools (Debian/Ubuntu: apt install megatools; macOS: brew install megatools)"


def megadl_command(url: str, destination: Path) -> list[str]:
    """megadl resumes nothing by itself, but skips files that are already complete in --path."""
    executable = shutil.which("megadl")
    if executable is None:
        raise KeeptrashError(f"download.source mega needs the megadl command, which is not on PATH; {INSTALL_HINT}")
    return [executable, "--path", str(destination), url]


def fetch_volumes(url: str, destination: Path) -> None:
    """The volumes of the MEGA folder at url (download.mega_url, checked non-empty by keeptrash.params) into destination."""
    destination.mkdir(parents=True, exist_ok=True)
    command = megadl_command(url, destination)
    completed = subprocess.run(command, stderr=subprocess.PIPE, text=True)
    if completed.returncode != 0:
        last = (completed.stderr.strip().splitlines() or ["no message"])[-1]
        raise KeeptrashError(f"megadl failed ({last}); check download.mega_url and the network, then rerun dvc repro to resume")
