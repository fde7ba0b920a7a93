"""The ``mixpanel-cohort-webhook`` command, which first checks that the web stack is installed.

The receiver's web server (starlette, uvicorn, httptools) and its metrics (prometheus_client)
are the ``[webhook]`` extra, not a dependency of the plugins. Without it the command says which
extra to install, in one line, and exits 2, instead of ending in an ImportError traceback.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

WEB_STACK = ("starlette", "uvicorn", "httptools", "prometheus_client")
DISTRIBUTION = "braze-mixpanel-singer"


def missing_web_stack() -> list[str]:
    """The modules of the ``[webhook]`` extra that cannot be imported."""
    return [name for name in WEB_STACK if importlib.util.find_spec(name) is None]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the receiver (:func:`mixpanel_cohort_webhook.cli.main`) if its extra is installed."""
    missing = missing_web_stack()
    if missing:
        print(
            f"mixpanel-cohort-webhook: {', '.join(missing)} not installed; the receiver needs "
            f"the [webhook] extra: pip install '{DISTRIBUTION}[webhook]'",
            file=sys.stderr,
        )
        raise SystemExit(2)
    from mixpanel_cohort_webhook.cli import main as serve

    serve(argv)
