"""A real BitTorrent seed on 127.0.0.1 for tests: a libtorrent session seeding a torrent of files the test made."""

import time
from pathlib import Path

import libtorrent as lt

PIECE_BYTES = 32 * 1024


def make_torrent(content: Path, torrent_file: Path) -> str:
    """Write a .torrent of the file or folder `content`; return its info hash."""
    creator = lt.create_torrent(lt.list_files(str(content)), PIECE_BYTES)
    lt.set_piece_hashes(creator, str(content.parent))
    torrent_file.write_bytes(lt.bencode(creator.generate()))
    return str(lt.torrent_info(str(torrent_file)).info_hashes().get_best())


class Seeder:
    """Seeds `torrent_file` from the folder holding its content, listening on 127.0.0.1 only.

    bytes_per_second > 0 throttles it; libtorrent exempts local peers from rate limits unless every
    address is put in the global peer class, as done here.
    """

    def __init__(self, torrent_file: Path, content_parent: Path, bytes_per_second: int = 0):
        self.session = lt.session(
            {
                "listen_interfaces": "127.0.0.1:0",
                "enable_dht": False,
                "enable_lsd": False,
                "enable_upnp": False,
                "enable_natpmp": False,
                # TCP only: a killed downloader's TCP connection ends at once (the kernel resets it), while a uTP
                # one lingers until it times out and blocks the restarted downloader's identical endpoint.
                "enable_incoming_utp": False,
                "enable_outgoing_utp": False,
                "upload_rate_limit": bytes_per_second,
            }
        )
        every_address = lt.ip_filter()
        every_address.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
        self.session.set_peer_class_filter(every_address)
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(str(torrent_file))
        params.save_path = str(content_parent)
        params.flags |= lt.torrent_flags.seed_mode
        self.handle = self.session.add_torrent(params)
        deadline = time.monotonic() + 10
        while not self.session.listen_port() and time.monotonic() < deadline:
            time.sleep(0.05)

    @property
    def peer(self) -> str:
        return f"127.0.0.1:{self.session.listen_port()}"

    def uploaded(self) -> int:
        return self.handle.status().all_time_upload

    def close(self) -> None:
        self.session.remove_torrent(self.handle)
        del self.session
