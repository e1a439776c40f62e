"""AVA over BitTorrent (the Academic Torrents copy) through libtorrent's Python bindings.

The torrent is named by a magnet link or a .torrent file. It is downloaded into
`download.archives_dir`; every piece is checked against the torrent's SHA-1 hashes by libtorrent,
and libtorrent's resume data is saved there every few seconds, so an interrupted run (even kill -9)
goes on from the pieces it had. Loose `<id>.jpg` files in a torrent are fetched only when the
labels ask for them; 7z volumes are needed whole, and are then extracted like any local archive.
"""

import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import libtorrent as lt
from tqdm import tqdm

from keeptrash.errors import KeeptrashError
from keeptrash.io import atomic_write
from keeptrash.params import host_and_port

AVA_INFO_HASH = "71631f83b11d3d79d8f84efe0a7e12f0ac001460"
_AVA_IMAGE = re.compile(r"(\d+)\.jpg")
_VOLUME = re.compile(r".+\.7z(\.\d+)?")
RESUME_EVERY_SECONDS = 5.0
_POLL_SECONDS = 0.25
_SKIP, _FETCH = 0, 4  # libtorrent file priorities: 0 = do not download, 4 = default
# connect_peer's pex flags without uTP: a named peer is reached over TCP, whose failures show at once.
_TCP_ENCRYPTION_ALLOWED = 1


@dataclass
class TorrentResult:
    images: dict[str, Path] = field(default_factory=dict)  # loose <id>.jpg files of the torrent, complete
    archive_folders: list[Path] = field(default_factory=list)  # folders holding its 7z archive or volumes
    downloaded_bytes: int = 0  # received from peers in this run


def _torrent_params(torrent: str) -> lt.add_torrent_params:
    if torrent.startswith("magnet:"):
        try:
            return lt.parse_magnet_uri(torrent)
        except RuntimeError as error:
            raise KeeptrashError(f"download.torrent: not a valid magnet link ({error}); use magnet:?xt=urn:btih:<info hash> or a .torrent file") from None
    path = Path(torrent)
    if not path.is_file():
        raise KeeptrashError(f"download.torrent: {torrent!r} is neither a magnet link nor an existing .torrent file")
    params = lt.add_torrent_params()
    try:
        params.ti = lt.torrent_info(str(path))
    except RuntimeError as error:
        raise KeeptrashError(f"{path}: not a valid .torrent file ({error}); download it again") from None
    return params


def _info_hash(params: lt.add_torrent_params) -> str:
    return str(params.ti.info_hashes().get_best() if params.ti else params.info_hashes.get_best())


def _add_params(torrent: str, archives_dir: Path) -> tuple[lt.add_torrent_params, Path]:
    """What to add to the session, from this torrent's resume data when an earlier run saved some; and that file."""
    params = _torrent_params(torrent)
    resume_file = archives_dir / f".keeptrash-{_info_hash(params)}.resume"
    if resume_file.is_file():
        try:
            params = lt.read_resume_data(resume_file.read_bytes())
        except RuntimeError:
            pass  # unreadable resume data: libtorrent rechecks the files on disk instead, nothing is lost
    params.save_path = str(archives_dir)
    # Upload mode requests no pieces until the file priorities are set, once the metadata is known.
    params.flags |= lt.torrent_flags.upload_mode
    return params, resume_file


def _session() -> lt.session:
    # libtorrent's defaults (DHT, trackers, port 6881) apart from what keeps the log quiet.
    return lt.session({"alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.storage_notification})


def _image_id(name: str) -> str | None:
    """The AVA id of a file named `<digits>.jpg`, else None."""
    image = _AVA_IMAGE.fullmatch(name)
    return str(int(image.group(1))) if image else None


def _is_content(files: lt.file_storage, index: int) -> bool:
    """Not alignment padding and not a symlink (which could point anywhere)."""
    return not files.file_flags(index) & (lt.file_storage.flag_pad_file | lt.file_storage.flag_symlink)


def _file_priorities(files: lt.file_storage, wanted_ids: set[str]) -> list[int]:
    """Fetch every archive volume and other file whole; loose images only when wanted; never symlinks or padding."""
    priorities = []
    for index in range(files.num_files()):
        image_id = _image_id(PurePosixPath(files.file_path(index).replace("\\", "/")).name)
        if not _is_content(files, index) or (image_id is not None and image_id not in wanted_ids):
            priorities.append(_SKIP)
        else:
            priorities.append(_FETCH)
    return priorities


def _connect(handle: lt.torrent_handle, peers: list[tuple[str, int]]) -> None:
    for peer in peers:
        handle.connect_peer(peer, 0, _TCP_ENCRYPTION_ALLOWED)


class _ResumeSaver:
    """Asks libtorrent for resume data now and then and writes it atomically, so kill -9 loses seconds, not pieces."""

    def __init__(self, session: lt.session, handle: lt.torrent_handle, resume_file: Path):
        self.session, self.handle, self.resume_file, self.last = session, handle, resume_file, 0.0

    def poll(self) -> None:
        if time.monotonic() - self.last >= RESUME_EVERY_SECONDS:
            self.handle.save_resume_data(lt.torrent_handle.save_info_dict)
            self.last = time.monotonic()
        self._handle_alerts()

    def flush(self) -> None:
        """Save resume data now and wait (up to 10 s) until it is on disk."""
        self.handle.save_resume_data(lt.torrent_handle.save_info_dict)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.session.wait_for_alert(100) is not None and self._handle_alerts():
                return

    def _handle_alerts(self) -> bool:
        """Write any resume data libtorrent has ready (True if some was), and fail on a disk error."""
        saved = False
        for alert in self.session.pop_alerts():
            if isinstance(alert, lt.save_resume_data_alert):
                data = lt.write_resume_data_buf(alert.params)
                atomic_write(self.resume_file, lambda temp, data=data: temp.write_bytes(data))
                saved = True
            elif isinstance(alert, (lt.file_error_alert, lt.torrent_error_alert)):
                raise KeeptrashError(f"torrent: {alert.message()}; fix the cause (disk full? permissions of download.archives_dir?) and rerun dvc repro to resume")
        return saved


def _stalled(what: str, seconds: float, status: lt.torrent_status) -> KeeptrashError:
    return KeeptrashError(
        f"torrent: {what} from any peer for {seconds:.0f} s ({status.total_wanted_done / 1e6:.1f} of "
        f"{status.total_wanted / 1e6:.1f} MB done, {status.num_peers} peers); check the network or firewall "
        "(or add a peer in download.torrent_peers) and rerun dvc repro to resume"
    )


def download_torrent(torrent: str, archives_dir: Path, wanted_ids: set[str], peers: tuple[str, ...], stall_seconds: float) -> TorrentResult:
    """Download what the labels need from the torrent into archives_dir, resuming from earlier runs."""
    archives_dir.mkdir(parents=True, exist_ok=True)
    direct_peers = [host_and_port(peer) for peer in peers]  # each one host:port, checked by keeptrash.params
    params, resume_file = _add_params(torrent, archives_dir)
    session = _session()
    handle = session.add_torrent(params)
    _connect(handle, direct_peers)
    saver = _ResumeSaver(session, handle, resume_file)
    last_progress = time.monotonic()
    while not handle.status().has_metadata:
        if time.monotonic() - last_progress > stall_seconds:
            raise _stalled("no torrent metadata", stall_seconds, handle.status())
        time.sleep(_POLL_SECONDS)
    files = handle.torrent_file().layout()
    handle.prioritize_files(_file_priorities(files, wanted_ids))
    handle.unset_flags(lt.torrent_flags.upload_mode)
    status = handle.status()
    needed = status.total_wanted - status.total_wanted_done
    free = shutil.disk_usage(archives_dir).free
    if needed > free:
        raise KeeptrashError(f"{archives_dir}: the torrent needs {needed / 1e9:.2f} GB more, only {free / 1e9:.2f} GB free; free space or move download.archives_dir")
    progress = tqdm(
        total=status.total_wanted, initial=status.total_wanted_done, desc=f"torrent {status.name}", unit="B", unit_scale=True, disable=None
    )
    done, last_progress = status.total_wanted_done, time.monotonic()
    while True:
        status = handle.status()
        if status.errc.value():
            raise KeeptrashError(f"torrent: {status.errc.message()}; fix the cause and rerun dvc repro to resume")
        if status.total_wanted_done > done:
            progress.update(status.total_wanted_done - done)
            done, last_progress = status.total_wanted_done, time.monotonic()
        progress.set_postfix(peers=status.num_peers, refresh=False)
        if status.total_wanted_done >= status.total_wanted and status.state not in (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data):
            break
        if time.monotonic() - last_progress > stall_seconds:
            raise _stalled("no data", stall_seconds, status)
        if status.num_peers == 0:
            _connect(handle, direct_peers)
        saver.poll()
        time.sleep(_POLL_SECONDS)
    progress.close()
    saver.flush()
    return _complete_files(handle, files, archives_dir, wanted_ids, status.total_payload_download)


def _complete_files(handle: lt.torrent_handle, files: lt.file_storage, archives_dir: Path, wanted_ids: set[str], downloaded: int) -> TorrentResult:
    result = TorrentResult(downloaded_bytes=downloaded)
    sizes = handle.file_progress()
    folders = set()
    for index in range(files.num_files()):
        if not _is_content(files, index) or sizes[index] != files.file_size(index):
            continue
        path = archives_dir / files.file_path(index)
        image_id = _image_id(path.name)
        if image_id in wanted_ids:
            result.images[image_id] = path
        elif image_id is None and _VOLUME.fullmatch(path.name):
            folders.add(path.parent)
    result.archive_folders = sorted(folders)
    return result
