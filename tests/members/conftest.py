import pytest

from tests.members.brreg_server import FakeBrreg


@pytest.fixture(scope="session")
def _fake_brreg():
    with FakeBrreg() as server:
        yield server


@pytest.fixture
def fake_brreg(app, _fake_brreg):
    """Point the app at the local fake register for one test."""
    old_url, old_timeout = app.config["BRREG_API_URL"], app.config["BRREG_TIMEOUT_SECONDS"]
    app.config["BRREG_API_URL"], app.config["BRREG_TIMEOUT_SECONDS"] = _fake_brreg.url, 0.3
    yield _fake_brreg
    app.config["BRREG_API_URL"], app.config["BRREG_TIMEOUT_SECONDS"] = old_url, old_timeout
