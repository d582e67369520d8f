"""Shared fixtures: a tiny random open_clip model folder, a temp home, app and client."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from jewelsearch.config import Settings  # noqa: E402
from jewelsearch.embed import load_encoder  # noqa: E402
from jewelsearch.embed.model_folder import build_model, save_model_folder  # noqa: E402
from jewelsearch.search.service import SearchService  # noqa: E402
from jewelsearch.storage import Catalog  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
API_KEY = "test-key-0123456789"

TINY_SPEC = {
    "format": 1,
    "name": "tiny-test",
    "open_clip_config": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    },
    "preprocess": {"image_size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
                   "interpolation": "bilinear"},
    "init": {},
}


def needs_shared_data(sub: str = "") -> pytest.MarkDecorator:
    return pytest.mark.skipif(not (SHARED_DATA / sub).exists(),
                              reason=f"../shared/data/{sub} is not on this machine (only in CI and dev)")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(1234)
    folder = tmp_path_factory.mktemp("models") / "tiny-test"
    net, _, _ = build_model(TINY_SPEC)
    save_model_folder(net, folder, TINY_SPEC, list(net.state_dict().keys()))
    return folder


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_dir):
    return load_encoder(str(tiny_model_dir))


def make_image(color=(200, 30, 30), size=(64, 48), fmt="PNG", seed: int | None = None, **save) -> bytes:
    """A small synthetic image; with a seed, a random pattern so each one embeds differently."""
    if seed is not None:
        rng = np.random.default_rng(seed)
        array = (rng.random((size[1] // 8 + 1, size[0] // 8 + 1, 3)) * 255).astype(np.uint8)
        image = Image.fromarray(array).resize(size, Image.NEAREST)
    else:
        image = Image.new("RGB", size, color)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


@pytest.fixture
def settings(tmp_path, tiny_model_dir) -> Settings:
    # Rate limits are off in tests unless a test turns them on (tests/test_rate_limits.py).
    return Settings(home=tmp_path / "home", model=str(tiny_model_dir), api_key=API_KEY, rate_limits=False)


@pytest.fixture
def service(settings, tiny_encoder):
    settings.home.mkdir(parents=True, exist_ok=True)
    catalog = Catalog.open(settings.db_path, settings.images_dir)
    svc = SearchService(catalog, tiny_encoder, settings.index_dir)
    yield svc
    catalog.close()


@pytest.fixture
def app(settings, service):
    from jewelsearch.server import create_app
    application = create_app(settings, service, autosave_seconds=None)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth():
    return {"X-API-Key": API_KEY}


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test: tiny fits and matrices, where a second thread on a busy
    machine only waits for a core (up to 30x slower). Use with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
