"""Runs ``mixpanel-utils`` (PyPI) ``import_events`` on an NDJSON file, against a local emulator.

    bench/.venv-mpu/bin/python bench/mpu_driver.py <emulator-url> <events.ndjson> [pool_size]

Runs in its own venv (bench/.venv-mpu, made by bench/comparison_tools.py). mixpanel-utils has no
base-URL parameter: ``__init__`` sets ``self.import_api = "https://api.mixpanel.com"`` (from
``residency``) and ``import_events`` posts to ``self.import_api + "/import"``. Assigning the
instance attribute after construction points it at the emulator; nothing else is changed.
"""

from __future__ import annotations

import json
import sys
import time

from mixpanel_utils import MixpanelUtils


def main() -> None:
    """Import the file and print a JSON summary."""
    url, path = sys.argv[1], sys.argv[2]
    pool_size = int(sys.argv[3]) if len(sys.argv) > 3 else None
    client = MixpanelUtils(
        "sa-secret",  # the service account's secret
        token="project-token",  # required by import_events (added to each event)
        service_account_username="sa-user.mp-service-account",
        project_id="12345",
        strict_import=True,
        pool_size=pool_size,
    )
    client.import_api = url  # the redirect
    started = time.perf_counter()
    client.import_events(path, timezone_offset=0)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "pool_size": client.pool_size}))


if __name__ == "__main__":
    main()
