"""Read Prometheus exposition text in tests, with prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def sample(text: str, name: str, **labels: str) -> float | None:
    """Return the value of sample ``name`` whose labels include ``labels``, else None.

    Raises:
        AssertionError: more than one sample matches (the labels are ambiguous).
    """
    found = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) <= 1, f"{len(found)} samples of {name} match {labels}"
    return found[0] if found else None


def family_type(text: str, name: str) -> str | None:
    """Return the ``# TYPE`` of metric family ``name``, else None."""
    for family in text_string_to_metric_families(text):
        if family.name == name:
            return str(family.type)
    return None
