import pytest

from core.labels import parse_label


@pytest.mark.parametrize("value, expected", [("NORMAL", 0), ("pneumonia", 1), (" Pneumonia ", 1), (0, 0), (1, 1)])
def test_parse_label_accepts_names_and_indices(value, expected):
    assert parse_label(value) == expected


@pytest.mark.parametrize("value", ["", "covid", 2, -1, True, "<script>"])
def test_parse_label_rejects_other_values(value):
    with pytest.raises(ValueError, match="label"):
        parse_label(value)
