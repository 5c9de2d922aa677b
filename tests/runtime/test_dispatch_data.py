"""The runtime's dispatch tables of augmentations and data sources name exactly the registry's clauses,
and a kind that no table knows is an error at its clause, never a default."""

import pytest

from trick.compiler import ir
from trick.dsl.diagnostics import Span, TrickError
from trick.runtime import augment, sources

try:
    from trick.compiler import clauses as R
except ImportError:
    from trick.compiler import registry as R

SPAN = Span("t.trick", 3, 5, 3, 17)


def implemented(registry) -> set[str]:
    """The keys the runtime must know: each entry's implementation name (its name by default)."""
    return {getattr(entry, "implementation", entry.name) for entry in registry}


def test_the_augmentation_table_names_the_registrys_augmentations():
    assert set(augment.OPS) == set(R.AUGMENTATIONS.names()) == implemented(R.AUGMENTATIONS)


def test_the_source_table_names_the_registrys_data_sources():
    assert set(sources.SOURCES) == set(R.DATA_SOURCES.names()) == implemented(R.DATA_SOURCES)


def error_of(call) -> tuple[str, Span]:
    with pytest.raises(TrickError) as info:
        call()
    return info.value.diagnostic.message, info.value.diagnostic.span


def test_an_unknown_augmentation_is_an_error_at_its_step():
    steps = (ir.Step("hflip", {"p": 0.5}, Span("t.trick", 2, 5, 2, 10)), ir.Step("hflp", {"p": 0.5}, SPAN))
    assert error_of(lambda: augment.Augmenter(steps)) == ("no runtime implementation of the augmentation 'hflp'; did you mean 'hflip'?", SPAN)
    assert error_of(lambda: augment.Augmenter((ir.Step("mixup", {}, SPAN),))) == ("no runtime implementation of the augmentation 'mixup'", SPAN)


def test_an_unknown_data_source_is_an_error_at_its_step():
    assert error_of(lambda: sources.load_source(ir.Step("digit", {}, SPAN), 0, ".")) == (
        "no runtime implementation of the data source 'digit'; did you mean 'digits'?",
        SPAN,
    )
    unknown = ir.Step("imagenet", {}, SPAN)
    assert error_of(lambda: sources.load_source(unknown, 0, ".")) == ("no runtime implementation of the data source 'imagenet'", SPAN)


def test_the_normalizer_table_names_the_registrys_normalizations():
    from trick.runtime import data

    assert set(data.NORMALIZERS) == set(R.NORMALIZERS.names()) == implemented(R.NORMALIZERS)


def test_an_unknown_normalization_is_an_error_at_its_clause():
    import torch

    from trick.runtime import data

    assert error_of(lambda: data.Normalizer("robust", "feature", SPAN).fit(torch.ones(4, 3))) == ("no runtime implementation of the normalization 'robust'", SPAN)
