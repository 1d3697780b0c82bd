from __future__ import annotations

from pipe.aws import AwsClients
from pipe.credentials import Credentials
from pipe.retry import SDK_MAX_ATTEMPTS


def test_sts_uses_the_regional_endpoint_and_the_standard_retry_mode() -> None:
    clients = AwsClients("eu-west-1", {}, 60)
    sts = clients.client("sts")
    assert sts.meta.endpoint_url == "https://sts.eu-west-1.amazonaws.com"
    assert sts.meta.config.retries["mode"] == "standard"
    assert sts.meta.config.retries["total_max_attempts"] == SDK_MAX_ATTEMPTS == 3


def test_a_zero_retry_timeout_leaves_the_sdks_retries_as_they_are() -> None:
    # RETRY_TIMEOUT_SECONDS=0 turns off only the pipe's own retries, as the README says.
    clients = AwsClients("eu-west-1", {"sts": "http://127.0.0.1:9"}, 0)
    sts = clients.client("sts", Credentials("AKIAX", "secret"))
    assert sts.meta.endpoint_url == "http://127.0.0.1:9"
    assert sts.meta.config.retries == {"mode": "standard", "total_max_attempts": SDK_MAX_ATTEMPTS}
