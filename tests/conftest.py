"""Suite-wide safety: no test may reach AWS or the internet."""

from __future__ import annotations

import os

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
