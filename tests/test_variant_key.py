"""The variant key folding compares by (search/variants.py): the spelled-out fast path gives the
key the field-by-field definition gives."""

from hypothesis import given
from hypothesis import strategies as st

from jewelsearch.search.variants import VARIANT_FIELDS, variant_key

VALUES = st.one_of(st.none(), st.sampled_from(["", "ring", "yellow gold", "sapphire blue", "oval"]))


def by_definition(row):
    """The title in lower case with single spaces, then each attribute, blank where recognition filled it."""
    guessed = row.get("predicted") or ()
    return (" ".join((row.get("title") or "").lower().split()),) + \
        tuple("" if field in guessed else row.get(field) or "" for field in VARIANT_FIELDS[1:])


@given(title=st.one_of(st.none(), st.text(max_size=30)),
       fields=st.dictionaries(st.sampled_from(VARIANT_FIELDS[1:]), VALUES),
       predicted=st.one_of(st.none(), st.frozensets(st.sampled_from(VARIANT_FIELDS[1:]))))
def test_the_key_is_the_definitions(title, fields, predicted):
    row = dict(fields, title=title)
    if predicted is not None:
        row["predicted"] = predicted
    assert variant_key(row) == by_definition(row)


def test_a_predicted_value_never_tells_variants_apart():
    row = {"title": " Hoop  Earrings", "category": "earrings", "metal": "gold", "predicted": frozenset({"metal"})}
    assert variant_key(row) == ("hoop earrings", "earrings", "", "", "")
