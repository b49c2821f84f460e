"""CI's proof that the tests never touch the user's services (issue 17).

`python3 .ci/tripwire.py ENV_FILE LOG` listens on a free local port, writes ENV_FILE
(the repository's `.env`) pointing every service at it, and appends one line to LOG
for every connection it accepts, until it is stopped. After the tests, a non-empty LOG
means something read that `.env`. Standard library only: it runs before `uv sync`.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path


def dotenv(port: int) -> str:
    """A `.env` pointing each service the tool talks to at the tripwire."""
    here = f"127.0.0.1:{port}"
    return "".join(
        f"{name}={value}\n"
        for name, value in (
            ("FOLDER_ID", "tripwire-folder"),
            ("DRIVE_API_ENDPOINT", f"http://{here}"),
            ("SHEETS_API_ENDPOINT", f"http://{here}"),
            ("SHEET_URL", f"http://{here}/spreadsheets/d/tripwire/edit"),
            ("MONGO_URI", f"mongodb://{here}/?serverSelectionTimeoutMS=2000"),
            ("HEALTHCHECK_URL", f"http://{here}/ping"),
            ("SENTRY_DSN", f"http://tripwire@{here}/1"),
        )
    )


def main(env_file: Path, log: Path) -> None:
    """Listen, write `env_file`, record every connection in `log` (forever)."""
    server = socket.create_server(("127.0.0.1", 0))
    env_file.write_text(dotenv(server.getsockname()[1]))
    while True:
        conn, _ = server.accept()
        conn.settimeout(1)
        try:
            first = conn.recv(200)
        except OSError:
            first = b""
        conn.close()
        with log.open("a") as f:
            f.write(f"{time.strftime('%H:%M:%S')} {first[:80]!r}\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
