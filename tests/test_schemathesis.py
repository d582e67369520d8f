"""Schemathesis against the served ``/openapi.json``: over 10,000 generated requests, zero 5xx.

The schema is loaded from the running WSGI app, so the document under test is exactly what
clients see. Every operation gets schema-conforming (positive) and schema-violating (negative)
cases. We drive the strategies with hypothesis directly instead of schemathesis' pytest plugin,
which does not yet work with pytest 9.
"""

from __future__ import annotations

import io
import os
import zlib

import pytest
import schemathesis
from conftest import API_KEY, make_image
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

# Operations without inputs (health, ready, stats) have a single possible case and no negative
# one; the other 14 operations x 2 modes x 420 cases keep the total over 10,000.
CASES_PER_OPERATION_AND_MODE = 420


@pytest.fixture
def served(app, client, auth):
    answered: list[int] = []

    @app.after_request
    def count(response):
        answered.append(response.status_code)
        return response

    for seed in range(3):
        data = {"image": (io.BytesIO(make_image(seed=seed)), "x.png"), "category": "ring", "price": "10"}
        assert client.post("/api/items", data=data, headers=auth, content_type="multipart/form-data").status_code == 201
    return schemathesis.openapi.from_wsgi("/openapi.json", app), answered


def _fuzz(operation, mode) -> None:
    # Derandomised so CI replays the cases that passed here; set JEWELSEARCH_FUZZ_EXPLORE=1 to
    # draw fresh ones (two real 500s were found that way: huge and Unicode-digit item ids).
    @settings(max_examples=CASES_PER_OPERATION_AND_MODE, deadline=None, database=None,
              derandomize=not os.environ.get("JEWELSEARCH_FUZZ_EXPLORE"),
              suppress_health_check=list(HealthCheck))
    @given(operation.as_strategy(generation_mode=mode))
    def run(case):
        # Half of the calls carry the key so the write paths are exercised past the auth gate too.
        with_key = zlib.crc32(repr((case.query, case.path_parameters, case.body)).encode()) % 2
        response = case.call(headers={"X-API-Key": API_KEY} if with_key else {})
        assert response.status_code < 500, (case.method, case.formatted_path, response.text[:300])
        if response.status_code >= 400 and response.headers.get("Content-Type", "").startswith("application/json"):
            assert "error" in response.json()

    run()


@pytest.mark.slow
def test_openapi_operations_never_5xx(served):
    schema, answered = served
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 13, [op.label for op in operations]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode)
            except Unsatisfiable:
                # Only legitimate when no input of the operation can be made invalid (e.g. health).
                assert mode is GenerationMode.NEGATIVE, operation.label
    print(f"schemathesis: {len(answered)} requests, highest status {max(answered)}")
    assert len(answered) >= 10_000, len(answered)
    assert max(answered) < 500
