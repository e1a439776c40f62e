"""The download stage: where AVA pixels come from (a folder, archives, HTTP, MEGA, a torrent) and the manifest of verified photos."""
