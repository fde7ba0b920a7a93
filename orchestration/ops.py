"""What every op of this code location shares: finding Meltano and failing with its reason."""

from collections.abc import Mapping, Sequence

import dagster as dg

from orchestration.project import MeltanoNotFoundError, MeltanoProject
from orchestration.runner import MeltanoResult, MeltanoRunError, OpLog, run_meltano

# Run tags the instance limits (orchestration/dagster.yaml).
SERIAL_TAG = "braze_mixpanel/serial"  # one run at a time per value
BACKFILL_TAG = "braze_mixpanel/backfill"  # backfill partitions in flight at once


def meltano_project() -> MeltanoProject:
    """The project of ``MELTANO_BIN``/``MELTANO_PROJECT_ROOT``; fails the op without Meltano."""
    try:
        return MeltanoProject.from_env()
    except MeltanoNotFoundError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None


def run_for_op(
    project: MeltanoProject,
    args: Sequence[str],
    log: OpLog,
    settings: Mapping[str, str] | None = None,
) -> MeltanoResult:
    """Run ``meltano <args>``; a failure fails the op with the plugin's error line."""
    try:
        return run_meltano(project, args, log, settings=settings)
    except MeltanoRunError as error:
        raise dg.Failure(
            description=str(error),
            metadata={"exit_code": error.result.returncode, "command": " ".join(args)},
        ) from None
