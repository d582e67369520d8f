import numpy as np
import pytest
from PIL import Image

from jewelsearch.recognize.gem_features import HUE_BINS, colour_histogram
from jewelsearch.recognize.gem_specialist import GemSpecialist
from jewelsearch.recognize.recognizer import Recognizer
from jewelsearch.train.gem_specialist import fit_gem_specialist


def test_colour_histogram_reads_hue_and_ignores_grey():
    red = colour_histogram(Image.new("RGB", (50, 40), (220, 20, 30)))
    assert red.shape == (48,) and red[:HUE_BINS].argmax() in (0, HUE_BINS - 1)
    blue = colour_histogram(Image.new("RGB", (50, 40), (20, 40, 220)))
    assert blue[:HUE_BINS].argmax() not in (0, HUE_BINS - 1)
    for part in (red[:HUE_BINS], red[HUE_BINS:HUE_BINS + 8], red[HUE_BINS + 8:]):
        assert part.sum() == pytest.approx(1.0, abs=1e-5)
    grey = colour_histogram(Image.new("RGB", (20, 20), (128, 128, 128)))
    assert grey[:HUE_BINS].sum() == 0  # no saturation, no hue evidence


def separable(n_per=30, classes=4, dim=12, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3, size=(classes, dim))
    x = np.concatenate([centres[c] + rng.normal(size=(n_per, dim)) for c in range(classes)]).astype(np.float32)
    labels = [f"stone {c}" for c in range(classes) for _ in range(n_per)]
    return x, labels


def test_fit_picks_decay_by_cross_validation_and_round_trips(tmp_path):
    x, labels = separable()
    specialist, summary = fit_gem_specialist(x, labels, folds=3, progress=lambda _: None)
    assert summary["photos"] == 120 and summary["classes"] == 4
    assert max(summary["cv_accuracy"].values()) > 0.9 and summary["temperature"] > 0
    probs = specialist.probabilities(x)
    assert probs.shape == (120, 4) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == np.repeat(np.arange(4), 30)).mean() > 0.9
    specialist.save(tmp_path, summary)
    again = GemSpecialist.load(tmp_path)
    assert again.vocabulary == specialist.vocabulary
    assert np.allclose(again.probabilities(x), probs, atol=2e-3)  # fp16 weights on disk
    assert GemSpecialist.load(tmp_path / "nowhere") is None


def test_the_specialist_names_loose_stones_and_pieces_keep_the_general_head(tiny_encoder):
    # The specialist gives garnet 0.88 against ruby 0.12 for these features.
    specialist = GemSpecialist(["ruby", "garnet red"], np.zeros(2, np.float32), np.ones(2, np.float32),
                               np.eye(2, dtype=np.float32) * 2, np.zeros(2, np.float32))
    recognizer = Recognizer(tiny_encoder)
    recognizer.gem_specialist = specialist  # the tiny tower has no maps; the rule is what is tested
    vocabulary = ["none", "pearl", "ruby", "garnet red"]
    general = np.array([[0.5, 0.1, 0.2, 0.2], [0.0, 0.0, 0.95, 0.05]], np.float32)
    says_garnet = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)
    alone = recognizer.with_specialist(general, vocabulary, says_garnet)
    assert np.allclose(alone[:, :2], 0) and np.allclose(alone.sum(1), 1, atol=1e-6)
    assert np.allclose(alone[:, 3], 0.88, atol=0.01)
    # The tiny tower has no maps: recognition embeds without them instead of failing.
    vectors, pooled = recognizer.embed([Image.new("RGB", (40, 40), "red")])
    assert pooled is None and vectors.shape == (1, tiny_encoder.dim)
    embeddings = tiny_encoder.encode_texts(["x", "y"])
    piece = recognizer.probabilities(embeddings, says_garnet, subject="piece")["gemstone"]
    assert np.allclose(piece, recognizer.probabilities(embeddings)["gemstone"])
    with pytest.raises(ValueError):
        recognizer.probabilities(embeddings, subject="bangle")


def test_training_keeps_each_photos_copies_in_one_fold(tmp_path):
    from jewelsearch.embed import load_encoder
    from jewelsearch.train.gem_specialist import train_gem_specialist
    from jewelsearch.train.labelled_data import Record
    records = []
    for n in range(6):
        colour = (200, 30, 40) if n % 2 else (30, 60, 210)
        path = tmp_path / f"{n}.png"
        Image.new("RGB", (48, 48), colour).save(path)
        records.append(Record(path, "train", {"gemstone": "ruby" if n % 2 else "sapphire blue"}))
    seen = []
    specialist, summary = train_gem_specialist(load_encoder("jewelclip-lite0"), records, views=1, folds=2,
                                               progress=lambda _: None, on_images=seen.append)
    assert sum(seen) == 12 and summary["rows"] == 12 and summary["photos"] == 6
    assert summary["augmented_views"] == 1 and specialist.vocabulary == ["ruby", "sapphire blue"]
