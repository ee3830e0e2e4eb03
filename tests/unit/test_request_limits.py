"""request.parse refuses bodies beyond its limits, and lone surrogates, before anything is built."""
import json

import pytest

from advanced_rest.dicomize import request
from advanced_rest.errors import BadRequest, LimitExceeded

PNG = "data:image/png;base64,AAAA"  # never decoded by parse


def nested(levels, leaf=None):
    """Tags nesting `levels` sequences, as JSON text (json.dumps would recurse)."""
    inner = json.dumps(leaf or {})
    return '{"ReferencedStudySequence":[' * levels + inner + "]}" * levels


def body(tags_text, **fields):
    extra = "".join(',"%s":%s' % (name, json.dumps(value)) for name, value in fields.items())
    return ('{"Tags":%s%s}' % (tags_text, extra)).encode()


def test_default_limits():
    assert request.Limits() == request.Limits(16, 10000, 1000)
    with pytest.raises(AttributeError):
        request.Limits().max_elements = 1  # frozen


def test_sixteen_levels_pass_seventeen_are_refused():
    assert request.parse(body(nested(16))).tags
    with pytest.raises(LimitExceeded) as refused:
        request.parse(body(nested(17)))
    assert "AdvancedRest.MaxSequenceDepth (16)" in refused.value.details
    assert (refused.value.http_status, refused.value.code) == (400, 3)


def test_depth_follows_the_given_limit():
    request.parse(body(nested(3)), request.Limits(max_sequence_depth=3))
    with pytest.raises(LimitExceeded, match=r"MaxSequenceDepth \(2\)"):
        request.parse(body(nested(3)), request.Limits(max_sequence_depth=2))


def test_depth_counts_series_items_tags():
    item = '{"Content":"%s","Tags":%s}' % (PNG, nested(3))
    text = ('{"Tags":{},"Content":[%s]}' % item).encode()
    request.parse(text, request.Limits(max_sequence_depth=3))
    with pytest.raises(LimitExceeded, match="MaxSequenceDepth"):
        request.parse(text, request.Limits(max_sequence_depth=2))


def test_an_empty_item_written_as_an_array_is_one_level():
    text = body('{"ReferencedStudySequence":[[]]}')
    assert request.parse(text, request.Limits(max_sequence_depth=1)).tags == {"ReferencedStudySequence": [[]]}


@pytest.mark.parametrize("levels", [45, 2000, 100_000])
def test_very_deep_bodies_are_a_limit_not_a_crash(levels):
    # From about 1000 levels Python's JSON parser itself gives up (RecursionError).
    with pytest.raises(LimitExceeded, match=r"AdvancedRest.MaxSequenceDepth \(16\)"):
        request.parse(body(nested(levels)))


def test_the_walk_does_not_recurse():
    document = {}
    for _ in range(50_000):  # far beyond Python's recursion limit
        document = {"ReferencedStudySequence": [document]}
    request._check_structure({"Tags": document}, request.Limits(100_000, 100_000))
    with pytest.raises(LimitExceeded, match="MaxSequenceDepth"):
        request._check_structure({"Tags": document}, request.Limits(49_999, 100_000))


def test_elements_count_every_tag_nested_items_and_series_items_included():
    tags = {"PatientName": "x", "ReferencedStudySequence": [{"ReferencedSOPClassUID": "1.2"}] * 3}
    items = [{"Content": PNG, "Tags": {"ImageComments": "a", "SeriesDescription": "b"}}]
    text = json.dumps({"Tags": tags, "Content": items}).encode()  # 2 + 3 + 2 elements
    request.parse(text, request.Limits(max_elements=7))
    with pytest.raises(LimitExceeded, match=r"AdvancedRest.MaxElements \(6\)"):
        request.parse(text, request.Limits(max_elements=6))


def test_ten_thousand_elements_pass_one_more_is_refused():
    many = {"ReferencedStudySequence": [{"ReferencedSOPClassUID": "1.2"}] * 9999}  # 1 + 9999 elements
    request.parse(json.dumps({"Tags": many}).encode())
    many["PatientName"] = "one more"
    with pytest.raises(LimitExceeded, match=r"AdvancedRest.MaxElements \(10000\)"):
        request.parse(json.dumps({"Tags": many}).encode())


def test_a_legacy_body_counts_its_own_keys():
    text = json.dumps({"PatientName": "x", "PatientID": "y", "StudyDescription": "z"}).encode()
    assert request.parse(text, request.Limits(max_elements=3)).legacy
    with pytest.raises(LimitExceeded, match="MaxElements"):
        request.parse(text, request.Limits(max_elements=2))


def test_fields_outside_tags_are_not_elements():
    text = json.dumps({"Tags": {"PatientName": "x"}, "Force": True, "PrivateCreator": "c"}).encode()
    request.parse(text, request.Limits(max_elements=1))


def test_instances_of_a_content_array():
    assert len(request.parse(json.dumps({"Tags": {}, "Content": [PNG] * 1000}).encode()).content) == 1000
    with pytest.raises(LimitExceeded, match=r"1001 instances.*AdvancedRest.MaxInstancesPerRequest \(1000\)"):
        request.parse(json.dumps({"Tags": {}, "Content": [PNG] * 1001}).encode())
    with pytest.raises(LimitExceeded, match=r"MaxInstancesPerRequest \(2\)"):
        request.parse(json.dumps({"Tags": {}, "Content": [PNG] * 3}).encode(), request.Limits(max_instances=2))


LONE = '"a\\ud800\\udfff\\ud800"'  # a valid pair, then a lone high surrogate


@pytest.mark.parametrize("text", [
    '{"Tags":{"PatientName":%s}}' % LONE,
    '{"PatientName":%s}' % LONE,  # legacy
    '{"Tags":{},"PrivateCreator":%s}' % LONE,
    '{"Tags":{"ReferencedStudySequence":[{"ReferencedSOPClassUID":%s}]}}' % LONE,
    '{"Tags":{},"Content":[{"Content":"x","Tags":{"ImageComments":%s}}]}' % LONE,
    '{"Tags":{"Patient\\ud800Name":"x"}}',  # in a key
    '{"Tags":{"PatientName":"a\\udc00b"}}',  # a lone low surrogate (the core keeps it as ill-formed UTF-8)
    '{"Tags":{},"Parent":"\\udfff"}',
    '[%s]' % LONE,
], ids=["tags", "legacy", "private-creator", "sequence", "series-item", "key", "low", "parent", "not-object"])
def test_lone_surrogates_are_refused_like_the_core(text):
    with pytest.raises(BadRequest) as refused:
        request.parse(text.encode())
    assert (refused.value.http_status, refused.value.code) == (400, 8)


def test_a_surrogate_pair_is_a_character():
    parsed = request.parse(b'{"Tags":{"PatientName":"a\\ud800\\udfffb"}}')
    assert parsed.tags["PatientName"] == "a\U000103ffb"


def test_characters_outside_the_charset_are_still_accepted():
    assert request.parse('{"Tags":{"PatientName":"Иванов 日本"}}'.encode()).tags["PatientName"] == "Иванов 日本"


def test_limits_none_means_the_defaults():
    with pytest.raises(LimitExceeded, match="MaxSequenceDepth"):
        request.parse(body(nested(17)), None)


def test_bodies_with_many_openings_skip_the_c_parser(monkeypatch):
    # The C parser would overflow the small stacks of Orthanc 1.10.1's HTTP threads.
    calls = []
    real_loads = json.loads
    monkeypatch.setattr(json, "loads", lambda text, **kw: calls.append(text) or real_loads(text, **kw))
    with pytest.raises(LimitExceeded, match="MaxSequenceDepth"):
        request.parse(body(nested(600)))
    assert calls == []
    request.parse(body(nested(16)))
    assert len(calls) == 1


def test_both_parsers_read_the_same_document():
    document = {"Tags": {"PatientName": "Jérôme \\\" [{", "ReferencedStudySequence": [{"StudyID": "1"}] * 300},
                "Content": [PNG] * 3, "Force": True, "Priority": -2, "X": [1.5e3, None, False]}
    text = json.dumps(document).encode("utf-16")
    assert not request._few_openings(text.decode("utf-16"), request.SAFE_C_NESTING)
    assert request._load(text) == document == json.loads(text)


@pytest.mark.parametrize("text, few", [("[" * 256, True), ("[" * 257, False), ("{" * 128 + "[" * 128, True),
                                       ("{" * 128 + "[" * 129, False), ('"%s"' % ("x" * 10**6), True)])
def test_few_openings(text, few):
    assert request._few_openings(text, 256) is few
