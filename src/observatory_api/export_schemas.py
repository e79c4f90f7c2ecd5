"""Write the committed API descriptions: `python -m observatory_api.export_schemas`.

A test fails when `schemas/openapi.json` or `schemas/schema.graphql` no longer matches the code.
"""

from __future__ import annotations

import json
from pathlib import Path

from litestar.serialization import encode_json

from observatory_api.app import create_app
from observatory_api.graphql.schema import schema_sdl
from observatory_api.settings import FeatureSettings, Settings

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def main() -> None:
    # The query API's document: ingest (OTLP, protobuf bodies) is described in docs/ingest.md.
    app = create_app(Settings(features=FeatureSettings(ingest=False)))
    # Litestar's encoder turns the Structs inside examples into plain JSON.
    document = json.loads(encode_json(app.openapi_schema.to_schema()))
    SCHEMAS.mkdir(exist_ok=True)
    (SCHEMAS / "openapi.json").write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    print(f"wrote {SCHEMAS / 'openapi.json'}")
    (SCHEMAS / "schema.graphql").write_text(schema_sdl())
    print(f"wrote {SCHEMAS / 'schema.graphql'}")


if __name__ == "__main__":
    main()
