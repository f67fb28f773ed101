import pytest


@pytest.fixture(scope="session", autouse=True)
def _steps_discovered():
    """Import every step module once, before any ``step_registry`` snapshot: a step module first imported inside a
    test would register there and be dropped when that test's registry is restored, and figures read each lineage
    step's defaults from the registry."""
    import workbench.steps

    workbench.steps.discover()
