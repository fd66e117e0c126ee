"""Suite-wide safety: no test may reach AWS or the internet, or leave a process behind."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Set before boto3 is imported anywhere: fake credentials, no EC2 metadata probe.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_SECURITY_TOKEN"] = "testing"
os.environ["AWS_SESSION_TOKEN"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["AWS_REGION"] = "us-east-1"
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)
for _var in [v for v in os.environ if v.startswith(("TRAINBOT_", "SLACK_"))]:
    del os.environ[_var]


@pytest.fixture(scope="session", autouse=True)
def _no_process_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`make test` leaves no process behind: at the end of the session no TensorBoard, data
    server or trainbot process of the suite's temp folders may still run."""
    from bot.adapters.tensorboard_local import stop_owned
    from tests.processes import kill, processes_mentioning

    base = str(tmp_path_factory.getbasetemp())
    yield
    stop_owned()  # servers this process started: what its exit would do, done now to check
    left = processes_mentioning(base)
    if left:
        kill(left)
        listing = "\n".join(f"  {pid}: {line}" for pid, line in sorted(left.items()))
        pytest.fail(f"the suite left {len(left)} process(es) running (now killed):\n{listing}",
                    pytrace=False)
