"""Every metric with every aggregation it lists, asked for alone: `GET /metrics/{id}?aggregation=`
and `POST /metrics/query` with that one selection, on both backends, against Python over the
generator's records. A percentile asked for alone once built a statement without columns (500)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from observatory_api.metrics.catalogue import METRICS, PERCENTILES
from observatory_api.metrics.histogram import ALPHA
from tests import dataset
from tests.integration.metrics.expected import close, in_window, value

END = dataset.DATASET_END
START = END - timedelta(days=7)
PREVIOUS_START = START - timedelta(days=7)
WINDOW = {"from": START.isoformat(), "to": END.isoformat()}


def agrees(actual: Any, wanted: Any, aggregation: str, source: str) -> bool:
    if source.startswith("rollup") and aggregation in PERCENTILES:
        # The stated bound of the rollup histograms (metrics.histogram).
        return wanted is not None and actual is not None and abs(actual - wanted) <= ALPHA * wanted + 1e-9
    return close(actual, wanted)


@pytest.mark.parametrize("metric_id", sorted(METRICS))
def test_each_aggregation_alone_through_get_metric(client: TestClient, metric_id: str) -> None:
    current_spans, previous_spans = in_window(START, END), in_window(PREVIOUS_START, START)
    for aggregation in METRICS[metric_id].aggregations:
        response = client.get(f"/api/v1/metrics/{metric_id}", params={**WINDOW, "aggregation": aggregation})
        assert response.status_code == 200, (aggregation, response.text)
        body = response.json()
        assert body["aggregation"] == aggregation
        wanted = value(metric_id, aggregation, current_spans)
        assert agrees(body["value"], wanted, aggregation, body["source"]), (aggregation, body["value"], wanted)
        previous = value(metric_id, aggregation, previous_spans)
        assert agrees(body["previous"]["value"], previous, aggregation, body["source"]), (aggregation, previous)
        assert datetime.fromisoformat(body["previous"]["from"]) == PREVIOUS_START


@pytest.mark.parametrize("metric_id", sorted(METRICS))
def test_each_aggregation_alone_through_a_metric_query(client: TestClient, metric_id: str) -> None:
    spans = in_window(START, END)
    for aggregation in METRICS[metric_id].aggregations:
        for source in ("raw", "auto"):
            body = {**WINDOW, "metrics": [{"id": metric_id, "aggregation": aggregation}], "source": source}
            response = client.post("/api/v1/metrics/query", json=body)
            assert response.status_code == 200, (aggregation, source, response.text)
            result = response.json()
            key = f"{metric_id}_{aggregation}"
            wanted = value(metric_id, aggregation, spans)
            assert agrees(result["totals"][key], wanted, aggregation, result["source"]), (aggregation, source)
            (series,) = result["series"]
            assert series["totals"] == result["totals"]
