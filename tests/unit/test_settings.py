import pytest

from advanced_rest import settings


def test_no_section_gives_defaults():
    assert settings.from_configuration({}) == settings.Settings()


def test_values_are_read():
    got = settings.from_configuration({
        "AdvancedRest": {"Root": "/ar/", "ServeCoreRoutes": False, "StrictDicom": True, "MaxImagePixels": 1000},
        "DefaultPrivateCreator": "Me",
    })
    assert (got.root, got.serve_core_routes, got.strict_dicom, got.max_image_pixels, got.default_private_creator) \
        == ("/ar", False, True, 1000, "Me")


def test_every_bad_value_is_named_at_once():
    with pytest.raises(settings.SettingsError) as caught:
        settings.from_configuration({"AdvancedRest": {
            "Root": "no-slash", "ServeCoreRoutes": "yes", "MaxImagePixels": True, "Typo": 1}})
    text = str(caught.value)
    for name in ("AdvancedRest.Root", "AdvancedRest.ServeCoreRoutes", "AdvancedRest.MaxImagePixels",
                 "AdvancedRest.Typo"):
        assert name in text
