"""Settings: one explicit object built from defaults, a TOML file, env and CLI.

Precedence (later wins): defaults < ``<home>/jewelsearch.toml`` < ``JEWELSEARCH_*``
environment variables < explicit overrides (CLI flags, test config).  Nothing
below ``cli.py`` / ``create_app`` reads the environment; they get a Settings.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

DEFAULT_MODEL = "jewelclip-lite0"


@dataclass
class Settings:
    home: Path = Path("jewelsearch-data")
    # A model folder path, the bundled default name, or an open_clip model name.
    model: str = DEFAULT_MODEL
    # open_clip pretrained tag or checkpoint path when ``model`` is an open_clip name.
    pretrained: str | None = None
    # How a model folder is built: "plain" builds the default architecture in plain torch (no
    # open_clip, timm or transformers imported: seconds less start-up), any other through
    # open_clip; "open_clip" always goes through open_clip.
    model_loader: str = "plain"
    # 0 = let torch decide; `serve` then shares the cores out among its request threads.
    torch_threads: int = 0
    batch_size: int = 32
    # Ingest decodes a large JPEG at 1/2, 1/4 or 1/8 scale while its long side stays at least
    # twice the model's input (448 px for the default model): faster, and the vectors hold
    # (docs/experiments/2026-12-07-draft-decoding.md). The stored photo is always the original.
    ingest_draft_decode: bool = True
    # What runs ingest's image tower pass: "torch", "openvino" (faster on CPU; in f32 the same
    # outputs within 1e-5, see ingest_precision; docs/experiments/2026-12-07-openvino-ingest.md),
    # or "auto": OpenVINO for a job of 128 photos or more once its converted graphs are saved,
    # converting them in a job of 2,000 or more.
    # Where OpenVINO cannot be used ingest logs it once and runs on torch.
    ingest_runtime: str = "auto"
    # The arithmetic of ingest's OpenVINO graphs: "f32" (torch's vectors within 1e-5), "bf16" (the
    # tower pass about 2x as fast on a CPU with AMX or AVX-512 BF16; stored vectors' cosine to f32's
    # 0.9994 mean on real photos, the same search and recognition measures:
    # docs/experiments/2026-12-07-bf16-ingest.md), or "auto": bf16 where OpenVINO reports the CPU
    # does bf16 natively, else f32. Where bf16 cannot be used the graphs run in f32 (one warning).
    ingest_precision: str = "auto"
    # Where the converted OpenVINO graphs are kept (by model and weights hash); "": the user's
    # cache folder (~/.cache/jewelsearch/openvino).
    openvino_cache_dir: str = ""

    # Index
    index_kind: str = "auto"  # auto | flat | hnsw | ivfpq
    index_memory_budget_mb: int = 2048
    # A second, instance vector per item (from the tower pass that makes the embedding) ranks
    # image queries, where the model's tower has the maps for it; false keeps one vector per item.
    instance_vectors: bool = True
    # Text search: the share of an item's semantic score from its own text vector (title and
    # given attributes) rather than its photo, 0-1 (chosen by tools/tune_text_field_weight.py,
    # docs/search_quality.md). Above 0, ingest also embeds each item's words; 0 makes no item
    # text vectors and text search compares the query with the photos only.
    text_field_weight: float = 0.75
    # Re-ranking of image queries' top 100 candidates: none | aqe | kreciprocal.
    rerank: str = "none"

    # Server
    host: str = "127.0.0.1"
    port: int = 8000
    server_threads: int = 8
    # ``serve --replicas N --engine local``: a reader accepts a new connection only while fewer
    # than this many of its connections hold work, so connections go to the reader with room
    # (``server/graceful.py``, ``accept_only_below``); 0 accepts whenever the socket is ready.
    replica_accept_limit: int = 1
    api_key: str | None = field(default=None, repr=False)
    allow_unauthenticated_writes: bool = False
    # Signs the web page's session cookie; random per process when unset.
    secret_key: str | None = field(default=None, repr=False)
    # Let the web page record shopper events through its CSRF-protected session.
    browser_events: bool = True
    cors_origins: str = ""  # comma-separated origins allowed to call the API; empty = CORS off
    # How many reverse proxies in front of the server append to X-Forwarded-For. 0: the header
    # is ignored and a client is its connection's address (a client cannot pick its own identity).
    trusted_proxy_hops: int = 0
    # GET /metrics (Prometheus) answers without the API key only when this is true: for a
    # scraper on a private network.
    metrics_public: bool = False

    # Rate limits per client address and endpoint class (Flask-Limiter rate strings such as
    # "60/minute" or "10/second;300/hour"; "" leaves a class unlimited). Counted in this process's
    # memory unless rate_limit_storage names a shared backend (e.g. redis://host:6379).
    rate_limits: bool = True
    rate_limit_upload: str = "60/minute"  # POST /api/items, and an item update with a new image
    rate_limit_image: str = "60/minute"  # image search, recognize, explain
    rate_limit_text: str = "300/minute"  # text and item search, similar items, recommendations
    rate_limit_write: str = "600/minute"  # events, item edits without an image, deletes
    rate_limit_storage: str = "memory://"

    # Limits on what a request may ask for
    max_upload_bytes: int = 16 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    max_text_chars: int = 500
    # A folder of the shop's own glossary files (*.json, the format of query/glossary/*.json:
    # its synonyms, a language of its own), read with the packaged ones; "": the packaged only.
    glossary_dir: str = ""
    max_k: int = 200
    # Distinct query texts whose vectors are kept (a changed filter or page re-sends the words); 0: none.
    text_cache_size: int = 4096
    # Query texts through a dynamic int8 copy of the text tower (about 0.6x its time; vectors close to,
    # not equal to, the fp32 tower's; items keep fp32 vectors). docs/experiments/2026-12-07-int8-query-text-tower.md
    text_query_int8: bool = False
    # What runs the query text tower in `serve` (one-shot commands always use torch): "torch";
    # "openvino" (the same vectors within 1e-5, about 0.6x the time; opened before serving starts);
    # "auto": OpenVINO opened in the background after start-up, torch answering until it is ready.
    # Where OpenVINO cannot be used, serve logs it once and stays on torch. The converted graph is
    # kept in openvino_cache_dir. docs/experiments/2026-12-07-openvino-query-text-tower.md
    text_query_runtime: str = "auto"
    # The OpenVINO text tower's precision: "f32" (torch's vectors within 1e-5) or "bf16" (about 0.7x
    # f32's time on a CPU with bf16; cosine to f32 0.9998-0.99995; search quality within noise, paired,
    # on the demo and held-out renders; docs/experiments/2026-12-07-openvino-query-text-tower.md).
    text_query_precision: str = "f32"
    # A connection that sends nothing for this long (a stalled or trickling upload) is closed,
    # so slow clients cannot pin the server's threads.
    request_timeout_seconds: int = 30

    # Recommendations
    half_life_days: float = 30.0  # a shopper's engagement halves in weight every this many days
    popularity_half_life_days: float = 7.0  # "popular this week"
    recently_seen_days: float = 7.0  # what `exclude_seen` leaves out
    # The "current visit" part of a profile decays this fast from the shopper's latest event.
    visit_half_life_hours: float = 4.0
    # Default weight of each event kind when an event does not carry its own, e.g. a TOML
    # table [event_weights] with view = 1, purchase = 10; the env form is JSON.
    event_weights: dict = field(default_factory=dict)
    # Blend weights ([blend] table: similarity, co_engagement, popularity, history, taste,
    # taste_sharpness, recency, explore, diversity, ward_threshold, max_interests); unset keys
    # keep the tuned defaults.
    blend: dict = field(default_factory=dict)

    @property
    def db_path(self) -> Path:
        return self.home / "catalog.db"

    @property
    def images_dir(self) -> Path:
        return self.home / "images"

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    def with_overrides(self, **overrides: Any) -> "Settings":
        clean = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **_coerce(clean))


_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(Settings)}


def _coerce(values: Mapping[str, Any]) -> dict[str, Any]:
    """Turn strings from env/TOML into the field's type; reject unknown keys."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in _FIELD_TYPES:
            raise ValueError(f"unknown setting {key!r}")
        kind = _FIELD_TYPES[key]
        if key == "home":
            value = Path(value)
        elif kind == "int" and isinstance(value, str):
            value = int(value)
        elif kind == "float":
            value = float(value)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"setting {key!r} must be a non-negative number")
        elif kind == "dict":
            if isinstance(value, str):
                value = json.loads(value)
            if not isinstance(value, dict):
                raise ValueError(f"setting {key!r} must be a table (TOML) or a JSON object (env)")
        elif kind == "bool" and isinstance(value, str):
            value = value.strip().lower() in ("1", "true", "yes", "on")
        out[key] = value
    return out


def load_settings(
    home: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build Settings from env, the home's TOML file and explicit overrides."""
    env = os.environ if env is None else env
    home_path = Path(home or env.get("JEWELSEARCH_HOME") or "jewelsearch-data")
    values: dict[str, Any] = {}
    toml_file = home_path / "jewelsearch.toml"
    if toml_file.exists():
        with open(toml_file, "rb") as fh:
            values.update(tomllib.load(fh))
    prefix = "JEWELSEARCH_"
    for key, value in env.items():
        if key.startswith(prefix):
            name = key[len(prefix):].lower()
            if name in _FIELD_TYPES and name != "home":
                values[name] = value
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    values["home"] = home_path
    return Settings(**_coerce(values))
